/* Shared by every page: the signed-in session, REST calls, toasts, the notification socket, chat.
 *
 * The token lives in sessionStorage (one tab, one user), requests send `Authorization: Token`,
 * and the socket `ws/notifications/?token=` reconnects with `last_seq` so nothing is missed.
 */
(function () {
  "use strict";

  const SESSION_KEY = "dispatch.session";
  const TOAST_MS = 5000;
  const HOME_FOR_ROLE = { customer: "/customer/", provider: "/provider/", ops: "/ops/" };

  function session() {
    try {
      return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    } catch (e) {
      return null;
    }
  }

  function saveSession(token, user) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token: token, user: user }));
  }

  function signOut() {
    sessionStorage.removeItem(SESSION_KEY);
    window.location.assign("/signin/");
  }

  /* The Sign out button: end the token on the server (its open sockets close too), then forget it here. */
  async function logOut() {
    const current = session();
    if (current && current.token) {
      try {
        await fetch("/auth/logout/", { method: "POST", headers: { Authorization: "Token " + current.token } });
      } catch (e) {
        /* Offline: the token is forgotten here all the same and expires unused. */
      }
    }
    signOut();
  }

  function roleOf(user) {
    return user ? user.role : null;
  }

  /* The page's user, or a trip to the sign-in page. `role` is the one the page is for. */
  function requireUser(role) {
    const current = session();
    if (!current || !current.token) {
      window.location.assign("/signin/?next=" + encodeURIComponent(window.location.pathname));
      return null;
    }
    const who = document.getElementById("whoami");
    who.textContent = current.user.name || current.user.username;
    who.hidden = false;
    const out = document.getElementById("signout");
    out.hidden = false;
    out.addEventListener("click", logOut);
    if (role && roleOf(current.user) !== role) {
      showPageError(
        "This page is for the " + role + " role; you are signed in as " + current.user.username + " (" + current.user.role +
        "). Go to your own page: " + window.location.origin + (HOME_FOR_ROLE[roleOf(current.user)] || "/") + ", or sign out."
      );
      return null;
    }
    return current.user;
  }

  /* Run a page's script `body(user, Dispatch)` once the user is known (else they go to sign in). */
  function page(role, body) {
    const user = requireUser(role);
    if (user) body(user, window.Dispatch);
  }

  function byId(id) {
    return document.getElementById(id);
  }

  /* Show `text` in an error box, or hide the box when `text` is empty. */
  function fail(box, text) {
    box.textContent = text;
    box.hidden = !text;
  }

  function showPageError(text) {
    fail(document.getElementById("page-error"), text);
  }

  /* Build an element: el("button", {type: "button", onclick: f}, "text", child, ...). Text is never parsed as HTML. */
  function el(tag, attrs) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([name, value]) {
      if (value === null || value === undefined || value === false) return;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (value === true) node.setAttribute(name, "");
      else node.setAttribute(name, String(value));
    });
    for (let i = 2; i < arguments.length; i += 1) {
      const child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      (Array.isArray(child) ? child : [child]).forEach(function (c) {
        node.append(c instanceof Node ? c : document.createTextNode(String(c)));
      });
    }
    return node;
  }

  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  /* A readable sentence from the API's error body: `{"code", "detail"}` or DRF's `{"field": ["..."]}`. */
  function errorText(status, body) {
    if (body && typeof body === "object") {
      if (typeof body.detail === "string") return body.detail;
      const parts = Object.entries(body)
        .filter(([key]) => key !== "code")
        .map(([key, value]) => {
          const text = Array.isArray(value) ? value.join(" ") : typeof value === "object" ? JSON.stringify(value) : value;
          return key === "non_field_errors" ? text : key.replace(/_/g, " ") + ": " + text;
        });
      if (parts.length) return parts.join(" · ");
    }
    if (status === 0) return "Cannot reach the server. Check your connection and try again.";
    if (status >= 500) return "Something went wrong on our side (HTTP " + status + "). Try again in a moment.";
    return "The request failed (HTTP " + status + ").";
  }

  async function api(path, options) {
    const opts = options || {};
    const current = session();
    const headers = Object.assign({ Accept: opts.accept || "application/json" }, opts.headers || {});
    if (current && current.token) headers.Authorization = "Token " + current.token;
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    let response;
    try {
      response = await fetch(path, { method: opts.method || (body ? "POST" : "GET"), headers: headers, body: body });
    } catch (e) {
      throw new ApiError(errorText(0), 0, null);
    }
    if (response.status === 401) {
      signOut();
      throw new ApiError("Your session has ended; sign in again.", 401, null);
    }
    if (opts.raw && response.ok) return response;
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (!response.ok) throw new ApiError(errorText(response.status, data), response.status, data);
    return data;
  }

  /* List routes may paginate (`{"results"}`) or not. */
  function rows(data) {
    return Array.isArray(data) ? data : (data && data.results) || [];
  }

  /* Every row of a list route, following its pages' `next` links (kept on this page's origin, as behind a proxy). */
  async function allRows(path) {
    let found = [];
    let next = path;
    while (next) {
      const data = await api(next);
      found = found.concat(rows(data));
      const link = data && !Array.isArray(data) && data.next ? new URL(data.next, window.location.href) : null;
      next = link ? link.pathname + link.search : null;
    }
    return found;
  }

  function toast(message, kind) {
    const box = document.getElementById("toasts");
    const item = el("div", { class: "toast " + (kind || "info") }, message);
    box.append(item);
    setTimeout(function () {
      item.remove();
    }, TOAST_MS);
  }

  function setLive(text, ok) {
    const live = document.getElementById("live");
    live.hidden = false;
    live.textContent = text;
    live.classList.toggle("ok", Boolean(ok));
  }

  /* The socket's credential: a one-time ticket (keeps the token out of URLs), or the token where the
   * server has no ticket route. */
  async function socketCredential() {
    try {
      const answer = await api("/auth/socket-ticket/", { method: "POST" });
      return "ticket=" + encodeURIComponent(answer.ticket);
    } catch (e) {
      if (e.status === 404 || e.status === 405) return "token=" + encodeURIComponent(session().token);
      throw e;
    }
  }

  /* The notification socket: `onEvent(event)` for every frame it gets (events, relayed call frames, replies);
   * `onOpen()` after each (re)connect. Returns `{send(frame)}`: true if the frame went out on the open socket. */
  function connectNotifications(onEvent, onOpen) {
    let lastSeq = null; // the highest seq received: a cursor that skips nothing (docs/realtime.md)
    let delay = 1000;
    let current = null;
    function retry() {
      setLive("○ Reconnecting…", false);
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 15000);
    }
    async function open() {
      let credential;
      try {
        credential = await socketCredential();
      } catch (e) {
        return retry();
      }
      const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      let url = scheme + window.location.host + "/ws/notifications/?" + credential;
      if (lastSeq !== null) url += "&last_seq=" + lastSeq;
      const socket = new WebSocket(url);
      current = socket;
      socket.addEventListener("open", function () {
        delay = 1000;
        setLive("● Live", true);
        if (onOpen) onOpen();
      });
      socket.addEventListener("message", function (message) {
        let event;
        try {
          event = JSON.parse(message.data);
        } catch (e) {
          return;
        }
        if (typeof event.seq === "number") lastSeq = Math.max(lastSeq || 0, event.seq);
        onEvent(event);
      });
      socket.addEventListener("close", function (closed) {
        // A refused token means the session is over; a refused ticket is retried with a new one.
        if (closed.code === 4401 && credential.startsWith("token=")) return signOut();
        retry();
      });
    }
    open();
    return {
      send: function (frame) {
        if (!current || current.readyState !== WebSocket.OPEN) return false;
        current.send(JSON.stringify(frame));
        return true;
      },
    };
  }

  function money(value) {
    if (value === null || value === undefined || value === "") return "—";
    const amount = Number(value);
    return "₹" + (Number.isInteger(amount) ? amount.toLocaleString("en-IN") : amount.toLocaleString("en-IN", { minimumFractionDigits: 2 }));
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "";
  }

  const STATUS_LABEL = {
    PENDING: "Waiting for a provider",
    ASSIGNED: "Provider assigned",
    IN_PROGRESS: "Work in progress",
    COMPLETED: "Completed",
    CANCELLED: "Cancelled",
    UNFULFILLED: "No provider found",
  };

  function statusBadge(status) {
    return el("span", { class: "badge status-" + status.toLowerCase() }, STATUS_LABEL[status] || status);
  }

  /* A job's chat in `container`: history, then live (call `refresh()` on NEW_MESSAGE). */
  function chat(container, job, me) {
    const list = el("ol", { class: "chat-log", "aria-label": "Messages for job " + job.id, "aria-live": "polite" });
    const input = el("input", { id: "chat-input-" + job.id, maxlength: 2000, autocomplete: "off", required: true });
    const error = el("p", { class: "error", role: "alert", hidden: true });
    const open = job.status === "ASSIGNED" || job.status === "IN_PROGRESS";
    let lastId = 0;
    const form = el(
      "form",
      { class: "chat-form", onsubmit: send },
      el("label", { for: input.id, class: "visually-hidden" }, "Message"),
      input,
      el("button", { type: "submit" }, "Send")
    );
    input.placeholder = open ? "Write a message…" : "Chat is open while the job is assigned or in progress";
    input.disabled = form.querySelector("button").disabled = !open;
    container.replaceChildren(el("h3", {}, "Chat"), list, form, error);

    function add(message) {
      if (message.id <= lastId) return;
      lastId = message.id;
      const mine = message.sender_id === me.id;
      list.append(
        el("li", { class: mine ? "mine" : "theirs" },
          el("span", { class: "who" }, mine ? "You" : message.sender_name),
          el("span", { class: "text" }, message.content),
          el("time", { datetime: message.created_at }, new Date(message.created_at).toLocaleTimeString([], { timeStyle: "short" })))
      );
      list.scrollTop = list.scrollHeight;
    }

    async function refresh() {
      try {
        const page = await api("/services/jobs/" + job.id + "/messages/" + (lastId ? "?after=" + lastId : ""));
        rows(page).forEach(add);
        error.hidden = true;
      } catch (e) {
        error.textContent = "Could not load the chat: " + e.message;
        error.hidden = false;
      }
    }

    async function send(submitted) {
      submitted.preventDefault();
      const content = input.value.trim();
      if (!content) return;
      try {
        add(await api("/services/jobs/" + job.id + "/messages/", { body: { content: content } }));
        input.value = "";
        error.hidden = true;
      } catch (e) {
        error.textContent = "Message not sent: " + e.message;
        error.hidden = false;
      }
    }

    refresh();
    return { refresh: refresh, jobId: job.id };
  }

  /* Download a protected file (the invoice) with the token, as a normal browser download. */
  async function download(path, filename) {
    const response = await api(path, { raw: true, accept: "application/pdf" });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(function () {
      URL.revokeObjectURL(url);
    }, 10000);
  }

  window.Dispatch = {
    allRows: allRows,
    api: api,
    ApiError: ApiError,
    byId: byId,
    chat: chat,
    connectNotifications: connectNotifications,
    download: download,
    el: el,
    fail: fail,
    homeFor: function (user) {
      return HOME_FOR_ROLE[roleOf(user)] || "/";
    },
    money: money,
    page: page,
    requireUser: requireUser,
    rows: rows,
    saveSession: saveSession,
    session: session,
    showPageError: showPageError,
    statusBadge: statusBadge,
    STATUS_LABEL: STATUS_LABEL,
    toast: toast,
    when: when,
  };
})();
