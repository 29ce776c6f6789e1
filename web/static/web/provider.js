/* The provider page: online/offline, job requests with a countdown, accept/reject, jobs by status, chat, location. */
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
  let chatView = null;
  let watchId = null;
  let lastSent = 0;

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
          el("p", { class: "muted" }, "Customer: " + job.customer_first_name + " · " + job.address +
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
  }

  function jobCard(job) {
    const customer = job.customer;
    const actions = [];
    if (job.status === "ASSIGNED") {
      actions.push(el("button", { type: "button", class: "primary", "aria-label": "Start work on job " + job.id,
        onclick: () => act(job, "start_job", "🚀 Work started") }, "🚀 Start Work"));
    }
    if (job.status === "IN_PROGRESS") {
      actions.push(el("button", { type: "button", class: "primary", "aria-label": "Complete job " + job.id,
        onclick: () => act(job, "complete_job", "✨ Job completed") }, "✨ Complete Job"));
    }
    if (["ASSIGNED", "IN_PROGRESS", "COMPLETED"].includes(job.status)) {
      actions.push(el("button", { type: "button", "aria-label": "Chat about job " + job.id, onclick: () => openChat(job) }, "💬 Chat"));
    }
    if (customer.phone && ["ASSIGNED", "IN_PROGRESS"].includes(job.status)) {
      actions.push(el("a", { class: "button", href: "tel:" + customer.phone.replace(/[^+0-9]/g, ""),
        "aria-label": "Call " + customer.name + " at " + customer.phone }, "📞 Call"));
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
      actions.length ? el("div", { class: "actions" }, actions) : null);
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
    } else {
      D.toast(event.message, event.event === "JOB_CANCELLED" ? "error" : "info");
      loadOffers();
      loadJobs();
    }
  }

  loadProfile();
  D.connectNotifications(onEvent, function () {
    loadOffers();
    loadJobs();
  });
});
