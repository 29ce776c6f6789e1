/* The provider page: online/offline, money (dues and why they stop requests, paying them; earnings with a chart),
 * job requests with a countdown, accept/reject, jobs by status (and handing one back, invoices), chat, location,
 * and "My week": working hours, time off and the time held by jobs. */
window.Dispatch.page("provider", function (me, D) {
  "use strict";
  const el = D.el;
  const $ = D.byId;
  const fail = D.fail;
  const SEND_EVERY_MS = 5000;
  const GROUPS = [
    ["ASSIGNED", "Assigned — ready to start"],
    ["IN_PROGRESS", "In progress"],
    ["COMPLETED", "Completed"],
    ["CANCELLED", "Cancelled"],
  ];
  let offers = [];
  let calls = null; // in-app calls (call.js), once the socket is there
  let chatView = null;
  let watchId = null;
  let lastSent = 0;
  let weekStart = null; // first local date asked for; null: today
  let shownFirst = null; // first local date on screen
  let weekLoads = 0;
  const releasing = new Map(); // job id -> the reason being typed (survives a re-render of the list)
  const customersRated = new Set(); // job ids whose customer this page rated (or found rated)
  const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
  const DAY_MIN = 24 * 60;

  /* ---- availability ---- */

  function showOnline(online) {
    $("online").checked = online;
    $("online-help").textContent = online
      ? "You are online: new job requests come to this page."
      : "You are offline: no job requests are sent to you.";
  }

  async function loadProfile() {
    try {
      const profile = await D.api("/providers/me/");
      showOnline(profile.is_online);
      loadProfileEditor(profile);
      showHours(profile);
      showTimeOff(profile.time_off || []);
      const lat = profile.last_latitude !== null ? profile.last_latitude : profile.latitude;
      const lng = profile.last_longitude !== null ? profile.last_longitude : profile.longitude;
      if (lat !== null && lat !== undefined) {
        $("manual-lat").value = lat;
        $("manual-lng").value = lng;
      }
    } catch (e) {
      fail($("online-error"), "Could not load your profile: " + e.message);
    }
  }

  $("online").addEventListener("change", async function () {
    const wanted = $("online").checked;
    try {
      const answer = await D.api("/providers/me/availability/", { body: { online: wanted } });
      showOnline(answer.online);
      fail($("online-error"), "");
    } catch (e) {
      showOnline(!wanted);
      fail($("online-error"), "Could not change your availability: " + e.message);
    }
  });

  /* ---- profile: what they do, where, how far, their work; reviews received ---- */

  const PROFILE_FIELDS = ["bio", "categories", "item_ids", "service_radius_km", "latitude", "longitude", "portfolio"];

  function workRow(entry) {
    const row = el("li", { class: "work-row" },
      el("input", { "aria-label": "Title", placeholder: "Title", maxlength: 120, value: entry.title || "", class: "work-title" }),
      el("input", { "aria-label": "Link (https://…)", placeholder: "https://…", maxlength: 500, value: entry.url || "", class: "work-url" }),
      el("input", { "aria-label": "Description", placeholder: "Description", maxlength: 1000, value: entry.description || "", class: "work-description" }),
      el("button", { type: "button", "aria-label": "Remove this work", onclick: function () { row.remove(); } }, "✕"),
      el("p", { class: "field-error work-error", role: "alert", hidden: true }));
    return row;
  }

  async function loadProfileEditor(profile) {
    $("profile-bio").value = profile.bio || "";
    $("profile-radius").value = profile.service_radius_km;
    $("profile-lat").value = profile.latitude === null ? "" : profile.latitude;
    $("profile-lng").value = profile.longitude === null ? "" : profile.longitude;
    $("profile-portfolio").replaceChildren(...(profile.portfolio || []).map(workRow));
    const mine = new Set(profile.categories.map((c) => c.id));
    const myItems = new Set(profile.items.map((i) => i.id));
    try {
      const catalog = D.rows(await D.api("/services/categories/?page_size=100"));
      $("profile-catalog").replaceChildren(...catalog.map(function (category) {
        return el("div", { class: "catalog-category" },
          el("label", {}, el("input", { type: "checkbox", name: "category", value: category.id, checked: mine.has(category.id) }),
            " ", el("strong", {}, category.name)),
          el("div", { class: "catalog-items" }, category.items.map((item) => el("label", {},
            el("input", { type: "checkbox", name: "item", value: item.id, checked: myItems.has(item.id) }),
            " " + item.name + " · " + D.money(item.price)))));
      }));
    } catch (e) {
      fail($("profile-error"), "Could not load the catalog: " + e.message);
    }
    try {
      const mineInPublic = await D.api("/auth/providers/" + me.id + "/");
      const reviews = mineInPublic.reviews || [];
      $("profile-reviews").replaceChildren(...(reviews.length ? reviews.map((r) => el("li", { class: "ops-job" },
        el("p", {}, "★".repeat(r.rating) + " · " + r.customer_name + " · " + D.when(r.created_at)),
        r.comment ? el("p", { class: "quote" }, "“" + r.comment + "”") : null))
        : [el("li", { class: "muted" }, "No reviews yet.")]));
    } catch (e) {
      fail($("profile-error"), "Could not load your reviews: " + e.message);
    }
  }

  function showProfileErrors(data) {
    let shown = false;
    PROFILE_FIELDS.forEach(function (field) {
      const box = $("error-profile-" + field);
      const said = data && data[field];
      const perRow = said && typeof said === "object" ? Object.values(said).some((e) => e && typeof e === "object" && !Array.isArray(e)) : false;
      if (field === "portfolio" && perRow) {
        // Errors by row (a list, or an object keyed by the row's index): each under its own row.
        $("profile-portfolio").querySelectorAll(".work-row").forEach(function (row, i) {
          const mine = said[i] || said[String(i)];
          const rowErrors = mine && typeof mine === "object" ? Object.entries(mine) : [];
          fail(row.querySelector(".work-error"), rowErrors.map(([k, v]) => k + ": " + [].concat(v).join(" ")).join(" · "));
        });
        shown = true;
        return fail(box, "");
      }
      fail(box, said ? [].concat(said).join(" ") : "");
      shown = shown || Boolean(said);
    });
    return shown;
  }

  $("add-work").addEventListener("click", function () {
    const row = workRow({});
    $("profile-portfolio").append(row);
    row.querySelector("input").focus();
  });

  $("profile-form").addEventListener("submit", async function (submitted) {
    submitted.preventDefault();
    document.querySelectorAll("#profile-portfolio .work-error").forEach((box) => fail(box, ""));
    const number = (id) => ($(id).value.trim() === "" ? null : Number($(id).value.trim()));
    const body = {
      bio: $("profile-bio").value,
      categories: [...document.querySelectorAll("#profile-catalog input[name=category]:checked")].map((b) => Number(b.value)),
      item_ids: [...document.querySelectorAll("#profile-catalog input[name=item]:checked")].map((b) => Number(b.value)),
      service_radius_km: number("profile-radius"),
      portfolio: [...document.querySelectorAll("#profile-portfolio .work-row")].map((row) => ({
        title: row.querySelector(".work-title").value.trim(),
        url: row.querySelector(".work-url").value.trim(),
        description: row.querySelector(".work-description").value.trim(),
      })),
    };
    if (number("profile-lat") !== null || number("profile-lng") !== null) {
      body.latitude = number("profile-lat");
      body.longitude = number("profile-lng");
    }
    try {
      const profile = await D.api("/providers/me/", { method: "PATCH", body: body });
      showProfileErrors({});
      fail($("profile-error"), "");
      D.toast("✅ Profile saved.", "success");
      loadProfileEditor(profile);
    } catch (e) {
      if (!showProfileErrors(e.body)) fail($("profile-error"), "Profile not saved: " + e.message);
      else fail($("profile-error"), "Profile not saved: see the messages above.");
    }
  });

  /* ---- money: dues and earnings ---- */

  async function loadDues() {
    let dues;
    try {
      dues = await D.api("/providers/me/dues/");
      fail($("dues-error"), "");
    } catch (e) {
      return fail($("dues-error"), "Could not load what you owe: " + e.message);
    }
    const owed = Number(dues.owed);
    const limit = dues.limit === null ? "" : " (limit " + D.money(dues.limit) + ")";
    const lines = [];
    if (dues.blocked) {
      lines.push(el("p", { class: "error", id: "dues-blocked", role: "status" },
        "⚠️ You owe " + D.money(dues.owed) + " in commission on cash jobs, at or past the limit of " +
        D.money(dues.limit) + ": you get no new job requests until you pay it."));
    } else {
      lines.push(el("p", { id: "dues-owed" }, owed > 0
        ? "You owe " + D.money(dues.owed) + " in commission on cash jobs" + limit + "."
        : "You owe nothing in commission."));
    }
    if (owed > 0) {
      lines.push(el("div", { class: "actions" }, el("button", { type: "button", class: dues.blocked ? "primary" : null,
        id: "pay-dues", onclick: payDues }, "💳 Pay " + D.money(dues.owed) + " now")));
    }
    $("dues").replaceChildren(...lines);
  }

  async function payDues() {
    const button = $("pay-dues");
    button.disabled = true;
    try {
      // One key per attempt: a double click or a retried request pays once.
      const key = "dues-" + Date.now() + "-" + Math.random().toString(36).slice(2);
      await D.api("/providers/me/dues/pay/", { body: {}, headers: { "Idempotency-Key": key } });
      D.toast("✅ Dues paid.", "success");
      fail($("dues-error"), "");
    } catch (e) {
      fail($("dues-error"), "Payment failed: " + e.message);
    }
    loadDues();
    loadEarnings();
  }

  async function loadEarnings() {
    let earnings;
    try {
      earnings = await D.api("/providers/me/earnings/");
      fail($("earnings-error"), "");
    } catch (e) {
      return fail($("earnings-error"), "Could not load your earnings: " + e.message);
    }
    const t = earnings.totals;
    const top = Math.max(1, ...earnings.periods.map((p) => Number(p.net)));
    const bars = earnings.periods.map(function (p) {
      const net = Math.max(0, Number(p.net));
      return el("span", { class: "bar", style: "height:" + Math.round((net / top) * 100) + "%",
        title: p.start + ": " + p.jobs + " jobs, net " + D.money(p.net) });
    });
    $("earnings").replaceChildren(
      el("p", {}, el("strong", {}, D.money(t.net)), " net from " + t.jobs + " jobs · gross " + D.money(t.gross) +
        " (cash " + D.money(t.cash) + ", wallet " + D.money(t.wallet) + ") · commission " + D.money(t.commission)),
      el("div", { class: "earnings-chart", role: "img",
        "aria-label": "Net earnings per day from " + earnings.from + " to " + earnings.to }, bars));
  }

  /* ---- job requests ---- */

  function secondsLeft(offer) {
    return Math.max(0, Math.round((new Date(offer.expires_at) - Date.now()) / 1000));
  }

  function tick() {
    document.querySelectorAll("[data-expires-at]").forEach(function (timer) {
      const left = Math.max(0, Math.round((new Date(timer.dataset.expiresAt) - Date.now()) / 1000));
      timer.querySelector(".seconds").textContent = left ? "⏱ " + left + " s left to answer" : "⌛ Expired";
      const bar = timer.querySelector("progress");
      bar.value = left;
      if (!left) {
        timer.closest("li").querySelectorAll("button").forEach((b) => (b.disabled = true));
      }
    });
  }
  setInterval(tick, 1000);

  async function loadOffers() {
    try {
      offers = D.rows(await D.api("/services/offers/?status=OFFERED"));
    } catch (e) {
      return D.showPageError("Could not load your job requests: " + e.message);
    }
    renderOffers();
  }

  function renderOffers() {
    $("request-count").textContent = offers.length ? "(" + offers.length + ")" : "";
    if (!offers.length) {
      $("offers").replaceChildren(el("li", { class: "muted" }, "No job requests right now."));
      return;
    }
    $("offers").replaceChildren(
      ...offers.map(function (offer) {
        const job = offer.job;
        const total = Math.max(1, Math.round((new Date(offer.expires_at) - new Date(offer.offered_at)) / 1000));
        const error = el("p", { class: "error", role: "alert", hidden: true });
        const answer = (verb) => async function () {
          this.closest("li").querySelectorAll("button").forEach((b) => (b.disabled = true));
          try {
            await D.api("/services/jobs/" + offer.job_id + "/" + verb + "/", { method: "POST" });
            D.toast(verb === "accept" ? "✅ You accepted job #" + offer.job_id + "." : "Job #" + offer.job_id + " declined.",
              verb === "accept" ? "success" : "info");
            loadOffers();
            loadJobs();
            loadWeek();
          } catch (e) {
            fail(error, "Could not " + verb + ": " + e.message);
            setTimeout(loadOffers, 3000);
          }
        };
        return el("li", { class: "offer", dataset: { jobId: offer.job_id } },
          el("p", { class: "job-title" }, el("strong", {}, "🔔 " + job.category + " · #" + offer.job_id),
            " ", el("span", { class: "price" }, D.money(job.total_price))),
          el("p", {}, job.items.map((i) => i.name).join(", ")),
          job.description ? el("p", { class: "quote" }, "“" + job.description + "”") : null,
          el("p", { class: "muted" }, "Customer: " + job.customer_first_name +
            (job.customer_rating !== null && job.customer_rating !== undefined
              ? " ★" + job.customer_rating.toFixed(1) + " (" + job.customer_rating_count + ")" : " · not rated yet") +
            " · " + job.address +
            (job.distance_km !== null ? " · " + job.distance_km + " km away" : "") +
            (job.scheduled_at ? " · slot " + D.when(job.scheduled_at) : " · now")),
          el("div", { class: "timer", role: "timer", dataset: { expiresAt: offer.expires_at } },
            el("span", { class: "seconds" }, "⏱ " + secondsLeft(offer) + " s left to answer"),
            el("progress", { max: total, value: secondsLeft(offer), "aria-label": "Time left to answer" })),
          el("div", { class: "actions" },
            el("button", { type: "button", class: "primary", onclick: answer("accept"),
              "aria-label": "Accept job " + offer.job_id }, "✅ Accept"),
            el("button", { type: "button", class: "danger", onclick: answer("reject"),
              "aria-label": "Reject job " + offer.job_id }, "❌ Reject")),
          error);
      })
    );
  }

  /* ---- my jobs ---- */

  async function act(job, verb, label) {
    try {
      await D.api("/services/jobs/" + job.id + "/" + verb + "/", { method: "POST" });
      D.toast(label + " · job #" + job.id, "success");
      fail($("jobs-error"), "");
    } catch (e) {
      fail($("jobs-error"), "Could not update job #" + job.id + ": " + e.message);
    }
    loadJobs();
    loadWeek();
  }

  /* "Can't make it": hand an ASSIGNED job back to dispatch, with a reason the customer's provider search records. */
  function releaseForm(job) {
    const id = "release-reason-" + job.id;
    const reason = el("textarea", { id: id, rows: 2, maxlength: 500, required: true,
      placeholder: "e.g. My van broke down", oninput: () => releasing.set(job.id, reason.value) });
    reason.value = releasing.get(job.id) || "";
    const error = el("p", { class: "error", role: "alert", hidden: true });
    const form = el("form", { class: "release-form", "aria-label": "Hand back job " + job.id },
      el("label", { for: id }, "Why can't you make job #" + job.id + "?"),
      reason,
      el("p", { class: "muted" }, "The customer is told you can't make it and dispatch finds someone else. " +
        "Handing jobs back lowers your ranking."),
      el("div", { class: "actions" },
        el("button", { type: "submit", class: "danger" }, "Hand back job #" + job.id),
        el("button", { type: "button", onclick: () => { releasing.delete(job.id); loadJobs(); } }, "Keep it")),
      error);
    form.addEventListener("submit", async function (submitted) {
      submitted.preventDefault();
      const text = reason.value.trim();
      if (!text) return fail(error, "Say why you can't make it.");
      form.querySelectorAll("button").forEach((b) => (b.disabled = true));
      try {
        await D.api("/services/jobs/" + job.id + "/release/", { body: { reason: text } });
        releasing.delete(job.id);
        loadJobs();
        loadWeek();
      } catch (e) {
        form.querySelectorAll("button").forEach((b) => (b.disabled = false));
        fail(error, "Could not hand back job #" + job.id + ": " + e.message);
      }
    });
    return form;
  }

  function jobCard(job) {
    const customer = job.customer;
    const actions = [];
    if (job.status === "ASSIGNED") {
      actions.push(el("button", { type: "button", class: "primary", "aria-label": "Start work on job " + job.id,
        onclick: () => act(job, "start_job", "🚀 Work started") }, "🚀 Start Work"));
      actions.push(el("button", { type: "button", class: "danger", "aria-label": "Can't make job " + job.id,
        "aria-expanded": String(releasing.has(job.id)),
        onclick: function () {
          if (releasing.has(job.id)) releasing.delete(job.id);
          else releasing.set(job.id, "");
          loadJobs().then(() => { const box = $("release-reason-" + job.id); if (box) box.focus(); });
        } }, "🙅 Can't make it"));
    }
    if (job.status === "IN_PROGRESS") {
      actions.push(el("button", { type: "button", class: "primary", "aria-label": "Complete job " + job.id,
        onclick: () => act(job, "complete_job", "✨ Job completed") }, "✨ Complete Job"));
    }
    if (["ASSIGNED", "IN_PROGRESS", "COMPLETED"].includes(job.status)) {
      actions.push(el("button", { type: "button", "aria-label": "Chat about job " + job.id, onclick: () => openChat(job) }, "💬 Chat"));
    }
    if (job.status === "COMPLETED" && !customersRated.has(job.id)) {
      actions.push(rateCustomerForm(job));
    }
    if (job.status === "COMPLETED") {
      actions.push(el("button", { type: "button", "aria-label": "Invoice of job " + job.id, onclick: async function () {
        try {
          await D.download("/services/jobs/" + job.id + "/invoice/", "invoice-" + job.id + ".pdf");
        } catch (e) {
          fail($("jobs-error"), "Could not download the invoice: " + e.message);
        }
      } }, "⬇ Invoice (PDF)"));
    }
    if (calls && ["ASSIGNED", "IN_PROGRESS"].includes(job.status)) {
      actions.push(calls.button(job, customer.name));
      const phone = calls.phoneLink(job, customer);
      if (phone) actions.push(phone);
    }
    if (["ASSIGNED", "IN_PROGRESS"].includes(job.status)) {
      actions.push(el("a", { class: "button", target: "_blank", rel: "noopener",
        href: "https://www.openstreetmap.org/directions?to=" + job.latitude + "%2C" + job.longitude,
        "aria-label": "Directions to job " + job.id }, "🧭 Directions"));
    }
    return el("li", { class: "job", dataset: { jobId: job.id } },
      el("p", { class: "job-title" }, el("strong", {}, "#" + job.id + " " + job.category.name), " ", D.statusBadge(job.status)),
      el("p", {}, job.items.map((i) => i.name).join(", ") + " · " + D.money(job.total_price) + " · " +
        (job.payment_method === "WALLET" ? "Wallet" : "Cash")),
      el("p", { class: "muted" }, customer.name + " · " + job.address + (job.scheduled_at ? " · slot " + D.when(job.scheduled_at) : "")),
      actions.length ? el("div", { class: "actions" }, actions) : null,
      job.status === "ASSIGNED" && releasing.has(job.id) ? releaseForm(job) : null);
  }

  /* Rate the customer of a completed job once (1-5); what other providers see on this customer's offers. */
  function rateCustomerForm(job) {
    const select = el("select", { "aria-label": "Rate " + job.customer.name + " for job " + job.id },
      el("option", { value: "" }, "Rate the customer…"), [5, 4, 3, 2, 1].map((n) => el("option", { value: n }, "★".repeat(n))));
    return el("span", { class: "rate-customer" }, select, el("button", { type: "button", onclick: async function () {
      if (!select.value) return fail($("jobs-error"), "Pick 1 to 5 stars for " + job.customer.name + ".");
      try {
        await D.api("/services/jobs/" + job.id + "/rate_customer/", { body: { rating: Number(select.value) } });
        D.toast("⭐ Thanks: " + job.customer.name + " rated.", "success");
        fail($("jobs-error"), "");
      } catch (e) {
        if (e.status !== 409) return fail($("jobs-error"), "Rating not saved: " + e.message);
      }
      customersRated.add(job.id);
      loadJobs();
    } }, "Rate"));
  }

  async function loadJobs() {
    let jobs;
    try {
      jobs = D.rows(await D.api("/services/jobs/?page_size=50"));
      fail($("jobs-error"), "");
    } catch (e) {
      return fail($("jobs-error"), "Could not load your jobs: " + e.message);
    }
    const sections = GROUPS.map(function ([status, title]) {
      const mine = jobs.filter((j) => j.status === status);
      if (!mine.length) return null;
      return el("section", { "aria-label": title }, el("h3", {}, title + " (" + mine.length + ")"),
        el("ol", { class: "job-list" }, mine.map(jobCard)));
    }).filter(Boolean);
    $("jobs").replaceChildren(...(sections.length ? sections : [el("p", { class: "muted" }, "No jobs yet. Accept a request to start.")]));
    if (chatView) {
      const fresh = jobs.find((j) => j.id === chatView.jobId);
      if (fresh && fresh.status !== chatView.status) openChat(fresh);
    }
    // A form left open for a job that is no longer ASSIGNED (cancelled, started) is dropped.
    releasing.forEach((_, id) => { if (!jobs.some((j) => j.id === id && j.status === "ASSIGNED")) releasing.delete(id); });
  }

  function openChat(job) {
    $("chat-card").hidden = false;
    $("chat-job").textContent = "Job #" + job.id + " with " + job.customer.name;
    chatView = D.chat($("chat"), job, me);
    chatView.status = job.status;
    $("chat-card").scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  /* ---- location ---- */

  async function sendPosition(lat, lng, manual) {
    const status = $("location-status");
    try {
      await D.api("/providers/me/location/", { body: { latitude: lat, longitude: lng } });
      lastSent = Date.now();
      status.textContent = (manual ? "Position sent: " : "Live location shared: ") + lat.toFixed(5) + ", " + lng.toFixed(5) +
        " at " + new Date().toLocaleTimeString([], { timeStyle: "medium" });
      fail($("location-error"), "");
    } catch (e) {
      if (e.status === 429 && !manual) return; // the next fix goes through
      fail($("location-error"), "Position not sent: " + e.message);
    }
  }

  $("share-location").addEventListener("click", function () {
    const button = $("share-location");
    if (watchId !== null) {
      navigator.geolocation.clearWatch(watchId);
      watchId = null;
      button.setAttribute("aria-pressed", "false");
      button.textContent = "📍 Share my live location";
      $("location-status").textContent = "Live location is off.";
      return;
    }
    if (!navigator.geolocation) {
      return fail($("location-error"), "This browser cannot share your location; send your position by hand below.");
    }
    watchId = navigator.geolocation.watchPosition(
      function (position) {
        const lat = position.coords.latitude;
        const lng = position.coords.longitude;
        $("manual-lat").value = lat.toFixed(5);
        $("manual-lng").value = lng.toFixed(5);
        if (Date.now() - lastSent >= SEND_EVERY_MS) sendPosition(lat, lng, false);
      },
      function (error) {
        fail($("location-error"), "Could not read your location (" + error.message + "). Send your position by hand below.");
      },
      { enableHighAccuracy: true, maximumAge: 5000 }
    );
    button.setAttribute("aria-pressed", "true");
    button.textContent = "⏹ Stop sharing location";
    $("location-status").textContent = "Waiting for your device's position…";
  });

  $("manual-location").addEventListener("submit", function (submitted) {
    submitted.preventDefault();
    const lat = Number($("manual-lat").value);
    const lng = Number($("manual-lng").value);
    if (!$("manual-lat").value.trim() || !$("manual-lng").value.trim() || !Number.isFinite(lat) || !Number.isFinite(lng) ||
        Math.abs(lat) > 90 || Math.abs(lng) > 180) {
      return fail($("location-error"), "Enter a latitude between −90 and 90 and a longitude between −180 and 180.");
    }
    sendPosition(lat, lng, true);
  });

  /* ---- my week: working hours as bands, holds as blocks ---- */

  /* A local ISO time from the API ("2026-12-03T09:30:00+05:30") as its wall-clock date and minute of the day:
   * the page draws the provider's own day, whatever the browser's zone. */
  function wall(iso) {
    return { date: iso.slice(0, 10), minute: Number(iso.slice(11, 13)) * 60 + Number(iso.slice(14, 16)), hhmm: iso.slice(11, 16) };
  }

  function dayNumber(date) {
    return Date.UTC(Number(date.slice(0, 4)), Number(date.slice(5, 7)) - 1, Number(date.slice(8, 10))) / 86400000;
  }

  function shiftDate(date, days) {
    return new Date((dayNumber(date) + days) * 86400000).toISOString().slice(0, 10);
  }

  /* Minutes since the first day's midnight. */
  function offset(iso, first) {
    const at = wall(iso);
    return (dayNumber(at.date) - dayNumber(first)) * DAY_MIN + at.minute;
  }

  /* An interval cut into per-day pieces: [{day, from, to}] in minutes of that day. */
  function perDay(startIso, endIso, first, days) {
    const a = offset(startIso, first);
    const b = offset(endIso, first);
    const pieces = [];
    for (let day = Math.max(0, Math.floor(a / DAY_MIN)); day < days && day * DAY_MIN < b; day += 1) {
      const from = Math.max(a, day * DAY_MIN) - day * DAY_MIN;
      const to = Math.min(b, (day + 1) * DAY_MIN) - day * DAY_MIN;
      if (to > from) pieces.push({ day: day, from: from, to: to });
    }
    return pieces;
  }

  function hhmm(minute) {
    return String(Math.floor(minute / 60)).padStart(2, "0") + ":" + String(minute % 60).padStart(2, "0");
  }

  async function loadWeek() {
    const mine = ++weekLoads;
    const query = new URLSearchParams({ days: 7 });
    if (weekStart) query.set("start", weekStart);
    let week;
    try {
      week = await D.api("/providers/me/holds/?" + query);
    } catch (e) {
      if (mine === weekLoads) fail($("week-error"), "Could not load your week: " + e.message);
      return;
    }
    if (mine !== weekLoads) return;
    fail($("week-error"), "");
    renderWeek(week);
  }

  function renderWeek(week) {
    const first = wall(week.start).date;
    shownFirst = first;
    const days = Math.max(1, Math.round((offset(week.end, first)) / DAY_MIN));
    const bands = week.working.flatMap((w) => perDay(w.start, w.end, first, days));
    const blocks = week.holds.flatMap((h) => perDay(h.start, h.end, first, days).map((piece) => Object.assign(piece, { hold: h })));
    // The hours drawn: 08:00-20:00 at least, widened to whole hours around everything there is.
    let lo = 8 * 60;
    let hi = 20 * 60;
    bands.concat(blocks).forEach(function (piece) {
      lo = Math.min(lo, Math.floor(piece.from / 60) * 60);
      hi = Math.max(hi, Math.ceil(piece.to / 60) * 60);
    });
    const span = hi - lo;
    const place = (piece) => "left:" + ((piece.from - lo) / span) * 100 + "%;width:" + ((piece.to - piece.from) / span) * 100 + "%";
    const step = span > 14 * 60 ? 180 : 120;
    const ticks = [];
    const lines = [];
    for (let m = Math.ceil(lo / step) * step; m < hi; m += step) {
      const left = "left:" + ((m - lo) / span) * 100 + "%";
      ticks.push(el("span", { class: "tick", style: left }, hhmm(m)));
      lines.push(left);
    }
    const today = new Intl.DateTimeFormat("en-CA", { timeZone: week.time_zone }).format(new Date());
    const rows = [];
    for (let day = 0; day < days; day += 1) {
      const date = shiftDate(first, day);
      const label = new Date(date + "T12:00:00Z").toLocaleDateString([], { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
      const dayBands = bands.filter((b) => b.day === day);
      const dayBlocks = blocks.filter((b) => b.day === day);
      const hours = dayBands.map((b) => hhmm(b.from) + "–" + hhmm(b.to)).join(", ");
      rows.push(el("li", { class: "week-day" + (date === today ? " today" : ""), dataset: { date: date } },
        el("span", { class: "week-label" }, label, date === today ? el("small", {}, "today") : null),
        el("div", { class: "week-track", role: "group",
          "aria-label": label + ": " + (hours ? "working " + hours : "not working") +
            (dayBlocks.length ? "; " + dayBlocks.length + (dayBlocks.length === 1 ? " hold" : " holds") : "") },
        dayBands.map((b) => el("span", { class: "band", style: place(b), title: "Working " + hhmm(b.from) + "–" + hhmm(b.to) })),
        lines.map((left) => el("span", { class: "gridline", style: left, "aria-hidden": "true" })),
        dayBands.length ? null : el("span", { class: "off" }, "Not working"),
        dayBlocks.map(function (b) {
          const h = b.hold;
          const starts = h.job_starts_at ? wall(h.job_starts_at).hhmm : wall(h.start).hhmm;
          const kind = h.firm ? "Booked" : "Held, request not answered";
          const text = "Job #" + h.job_id + " at " + starts + " · " + kind + " · held " + wall(h.start).hhmm + "–" +
            wall(h.end).hhmm + " (travel time first) · " + h.address;
          return el("span", { class: "hold " + (h.firm ? "firm" : "tentative"), style: place(b), title: text,
            "aria-label": text, dataset: { jobId: h.job_id } }, "#" + h.job_id + " " + starts);
        }))));
    }
    $("week-range").textContent = "(" + first + " to " + shiftDate(first, days - 1) + ")";
    $("week-zone").textContent = "Times in " + week.time_zone + ".";
    $("week").replaceChildren(
      el("div", { class: "week-scale", "aria-hidden": "true" }, el("span", { class: "week-label" }), el("div", { class: "week-ticks" }, ticks)),
      el("ol", { class: "week-days" }, rows));
  }

  $("week-prev").addEventListener("click", function () {
    if (!shownFirst) return;
    weekStart = shiftDate(shownFirst, -7);
    loadWeek();
  });
  $("week-next").addEventListener("click", function () {
    if (!shownFirst) return;
    weekStart = shiftDate(shownFirst, 7);
    loadWeek();
  });
  $("week-this").addEventListener("click", function () {
    weekStart = null;
    loadWeek();
  });

  /* ---- hours editor ---- */

  let rowSeq = 0;

  function timeInput(label, value) {
    return el("input", { type: "time", step: 60, value: value ? value.slice(0, 5) : "", "aria-label": label, required: true });
  }

  function hoursRow(window) {
    const n = ++rowSeq;
    const day = el("select", { "aria-label": "Day", name: "weekday-" + n },
      WEEKDAYS.map((name, i) => el("option", { value: i, selected: window && window.weekday === i }, name)));
    const row = el("li", { class: "edit-row hours-row" },
      day,
      timeInput("From", window ? window.start : "09:00"),
      el("span", { "aria-hidden": "true" }, "–"),
      timeInput("To", window ? window.end : "17:00"),
      el("button", { type: "button", class: "link-button", "aria-label": "Remove these hours",
        onclick: () => { row.remove(); showHoursHint(); } }, "Remove"));
    return row;
  }

  function showHoursHint() {
    const list = $("hours");
    const hint = list.querySelector(".empty");
    if (!list.querySelector(".hours-row") && !hint) {
      list.append(el("li", { class: "muted empty" }, "No weekly hours: you can be booked at any time of any day."));
    } else if (list.querySelector(".hours-row") && hint) {
      hint.remove();
    }
  }

  function showHours(profile) {
    $("time-zone").value = profile.time_zone || "";
    const windows = (profile.availability || []).slice().sort((a, b) => a.weekday - b.weekday || a.start.localeCompare(b.start));
    $("hours").replaceChildren(...windows.map(hoursRow));
    showHoursHint();
  }

  $("add-hours").addEventListener("click", function () {
    const last = Array.from($("hours").querySelectorAll(".hours-row select")).pop();
    const row = hoursRow({ weekday: last ? (Number(last.value) + 1) % 7 : 0, start: "09:00", end: "17:00" });
    $("hours").append(row);
    showHoursHint();
    row.querySelector("select").focus();
  });

  $("hours-form").addEventListener("submit", async function (submitted) {
    submitted.preventDefault();
    const box = $("hours-error");
    const zone = $("time-zone").value.trim();
    if (!zone) return fail(box, "Enter your time zone, e.g. Asia/Kolkata.");
    const availability = [];
    for (const row of $("hours").querySelectorAll(".hours-row")) {
      const [start, end] = row.querySelectorAll("input[type=time]");
      const weekday = Number(row.querySelector("select").value);
      if (!start.value || !end.value) return fail(box, "Give a start and an end time on every row (" + WEEKDAYS[weekday] + ").");
      if (start.value === end.value) return fail(box, WEEKDAYS[weekday] + ": the end must differ from the start.");
      availability.push({ weekday: weekday, start: start.value, end: end.value });
    }
    try {
      const profile = await D.api("/providers/me/", { method: "PATCH", body: { time_zone: zone, availability: availability } });
      showHours(profile);
      fail(box, "");
      D.toast("🗓 Working hours saved.", "success");
      loadWeek();
    } catch (e) {
      fail(box, "Hours not saved: " + e.message);
    }
  });

  if (Intl.supportedValuesOf) {
    $("time-zones").replaceChildren(...Intl.supportedValuesOf("timeZone").map((zone) => el("option", { value: zone })));
  }

  /* ---- time-off editor ---- */

  function timeOffRow(entry) {
    const n = ++rowSeq;
    const wholeId = "whole-day-" + n;
    const date = el("input", { type: "date", value: entry ? entry.date : "", "aria-label": "Date", required: true });
    const kind = el("select", { "aria-label": "Kind" },
      el("option", { value: "off", selected: !entry || entry.kind === "off" }, "Off"),
      el("option", { value: "extra", selected: entry && entry.kind === "extra" }, "Extra hours"));
    const whole = el("input", { type: "checkbox", id: wholeId, checked: !entry || entry.start === null });
    const start = timeInput("From", entry && entry.start);
    const end = timeInput("To", entry && entry.end);
    const times = el("span", { class: "times" }, start, el("span", { "aria-hidden": "true" }, "–"), end);
    function sync() {
      if (kind.value === "extra") whole.checked = false;
      whole.disabled = kind.value === "extra";
      start.disabled = end.disabled = times.hidden = whole.checked;
      if (!whole.checked && !start.value) start.value = "09:00";
      if (!whole.checked && !end.value) end.value = "13:00";
    }
    kind.addEventListener("change", sync);
    whole.addEventListener("change", sync);
    const row = el("li", { class: "edit-row time-off-row" },
      date, kind,
      el("span", { class: "checkbox" }, whole, el("label", { for: wholeId }, "Whole day")),
      times,
      el("button", { type: "button", class: "link-button", "aria-label": "Remove this date",
        onclick: () => { row.remove(); showTimeOffHint(); } }, "Remove"));
    sync();
    return row;
  }

  function showTimeOffHint() {
    const list = $("time-off");
    const hint = list.querySelector(".empty");
    if (!list.querySelector(".time-off-row") && !hint) list.append(el("li", { class: "muted empty" }, "No time off or extra hours."));
    else if (list.querySelector(".time-off-row") && hint) hint.remove();
  }

  function showTimeOff(entries) {
    const sorted = entries.slice().sort((a, b) => a.date.localeCompare(b.date) || String(a.start).localeCompare(String(b.start)));
    $("time-off").replaceChildren(...sorted.map(timeOffRow));
    showTimeOffHint();
  }

  $("add-time-off").addEventListener("click", function () {
    const row = timeOffRow(null);
    $("time-off").append(row);
    showTimeOffHint();
    row.querySelector("input[type=date]").focus();
  });

  $("time-off-form").addEventListener("submit", async function (submitted) {
    submitted.preventDefault();
    const box = $("time-off-error");
    const entries = [];
    for (const row of $("time-off").querySelectorAll(".time-off-row")) {
      const [date, start, end] = row.querySelectorAll("input[type=date], input[type=time]");
      const kind = row.querySelector("select").value;
      const whole = row.querySelector("input[type=checkbox]").checked;
      if (!date.value) return fail(box, "Give a date on every row.");
      if (!whole && (!start.value || !end.value)) return fail(box, date.value + ": give a start and an end time, or the whole day.");
      if (!whole && start.value === end.value) return fail(box, date.value + ": the end must differ from the start.");
      entries.push({ date: date.value, kind: kind, start: whole ? null : start.value, end: whole ? null : end.value });
    }
    try {
      const profile = await D.api("/providers/me/", { method: "PATCH", body: { time_off: entries } });
      showTimeOff(profile.time_off || []);
      fail(box, "");
      D.toast("🗓 Time off saved.", "success");
      loadWeek();
    } catch (e) {
      fail(box, "Time off not saved: " + e.message);
    }
  });

  /* ---- live ---- */

  function onEvent(event) {
    if (event.type !== "job_update") return;
    if (event.event === "JOB_OFFER") {
      D.toast(event.message + " · " + D.money(event.total_price), "info");
      loadOffers();
    } else if (event.event === "OFFER_WITHDRAWN") {
      D.toast(event.message, "warn");
      loadOffers();
    } else if (event.event === "NEW_MESSAGE") {
      D.toast(event.message, "info");
      if (chatView && chatView.jobId === event.job_id) chatView.refresh();
      return;
    } else if (event.event === "JOB_RELEASED" && event.why === "no_show") {
      D.toast("🚩 Job #" + event.job_id + " is no longer yours: you were reported as not showing up.", "error");
      loadJobs();
    } else if (event.event === "CALL_STARTED" || event.event === "CALL_ENDED") {
      D.toast(event.message, "info");
      return;
    } else if (event.event === "DUES_LIMIT_REACHED" || event.event === "DUES_CLEARED") {
      D.toast(event.message, event.event === "DUES_CLEARED" ? "success" : "error");
      loadDues();
      return;
    } else if (event.event === "JOB_REMINDER" && event.starts_at) {
      D.toast("⏰ Reminder: job #" + event.job_id + " starts at " + D.when(event.starts_at) + ".", "info");
      loadJobs();
    } else {
      D.toast(event.message, event.event === "JOB_CANCELLED" ? "error" : event.event === "JOB_RELEASED" ? "warn" : "info");
      loadOffers();
      loadJobs();
      loadDues();
      loadEarnings();
    }
    loadWeek(); // offers hold time tentatively; accepts, releases and cancels change it
  }

  loadProfile();
  loadDues();
  loadEarnings();
  const socket = D.connectNotifications(function (frame) {
    if (!calls.handle(frame)) onEvent(frame);
  }, function () {
    loadDues();
    loadOffers();
    loadJobs();
    loadWeek();
  });
  calls = D.calls(socket);
});
