/* The customer page: search providers (list and map), book now or a free slot, follow the request live, chat,
 * review, invoice. */
window.Dispatch.page("customer", function (me, D) {
  "use strict";
  const el = D.el;
  const $ = D.byId;
  const fail = D.fail;
  const searchForm = $("search-form");
  const bookForm = $("book-form");
  const categories = new Map();
  let providers = [];
  let currentJob = null;
  let calls = null; // in-app calls (call.js), once the socket is there
  let chatView = null;
  let eta = null;
  let searches = 0; // only the latest search's answer is shown
  let slotLoads = 0; // likewise for the free starts
  let slotZone = null; // the time zone of the last free starts shown (the provider's)
  let pendingStart = null; // a start to select once its day's list arrives (a "next free start" clicked)
  let noShowTimer = null;
  const reviewed = new Set();
  const alternatives = new Map(); // job id -> starts offered with JOB_UNFULFILLED
  // DISPATCH_NO_SHOW_GRACE_S's default: the button shows from then; the server decides (409 before).
  const NO_SHOW_GRACE_MS = 15 * 60 * 1000;

  const EVENT_KIND = {
    JOB_ACCEPTED: "success",
    JOB_STARTED: "success",
    JOB_COMPLETED: "success",
    JOB_REJECTED: "warn",
    JOB_OFFER_EXPIRED: "warn",
    JOB_UNFULFILLED: "error",
    JOB_CANCELLED: "error",
    JOB_PROVIDER_RELEASED: "warn",
    JOB_REMINDER: "info",
  };
  const ACTIVE = ["PENDING", "ASSIGNED", "IN_PROGRESS"];

  const map = window.DispatchMap.create("map", "map-note", [Number($("lat").value), Number($("lng").value)]);
  map.onClick(function (lat, lng) {
    $("lat").value = lat.toFixed(5);
    $("lng").value = lng.toFixed(5);
    map.setMe(lat, lng);
    search();
  });

  function point() {
    const lat = Number($("lat").value);
    const lng = Number($("lng").value);
    if (!$("lat").value.trim() || !$("lng").value.trim() || !Number.isFinite(lat) || !Number.isFinite(lng) ||
        Math.abs(lat) > 90 || Math.abs(lng) > 180) {
      return null;
    }
    return { lat: lat, lng: lng };
  }

  /* ---- search ---- */

  async function loadCategories() {
    const select = $("category");
    try {
      const list = D.rows(await D.api("/services/categories/"));
      select.replaceChildren(el("option", { value: "" }, "Choose a category…"));
      list.forEach(function (category) {
        categories.set(String(category.id), category);
        select.append(el("option", { value: category.id }, category.name));
      });
    } catch (e) {
      fail($("search-error"), "Could not load the categories: " + e.message);
    }
  }

  function renderItems() {
    const category = categories.get($("category").value);
    const box = $("items");
    if (!category) {
      box.replaceChildren(el("p", { class: "muted" }, "Pick a category first."));
      renderTotal();
      return;
    }
    box.replaceChildren(
      ...category.items.map(function (item, index) {
        const id = "item-" + item.id;
        return el("div", { class: "check" },
          el("input", { type: "checkbox", id: id, name: "item", value: item.id, checked: index === 0, onchange: renderTotal }),
          el("label", { for: id }, item.name + " · " + D.money(item.price)));
      })
    );
    renderTotal();
  }

  function chosenItems() {
    return Array.from(bookForm.querySelectorAll("input[name=item]:checked")).map((box) => Number(box.value));
  }

  function renderTotal() {
    const category = categories.get($("category").value);
    const chosen = new Set(chosenItems());
    const total = category ? category.items.filter((i) => chosen.has(i.id)).reduce((sum, i) => sum + Number(i.price), 0) : 0;
    $("total").textContent = total ? "Total: " + D.money(total) : "";
  }

  async function search() {
    const box = $("search-error");
    const category = $("category").value;
    const at = point();
    if (!category) return fail(box, "Choose a service category.");
    if (!at) return fail(box, "Enter your latitude (−90 to 90) and longitude (−180 to 180), or use your location.");
    fail(box, "");
    const radius = $("radius").value;
    const query = new URLSearchParams({
      category: category, lat: at.lat, lng: at.lng, radius_km: radius, ordering: $("ordering").value, page_size: 50,
    });
    if ($("online-only").checked) query.set("available", "true");
    const mine = ++searches;
    let found;
    try {
      found = D.rows(await D.api("/auth/providers/?" + query));
    } catch (e) {
      return mine === searches && fail(box, "Search failed: " + e.message);
    }
    if (mine !== searches) return;
    providers = found;
    map.setMe(at.lat, at.lng);
    map.setProviders(providers, at.lat, at.lng, Number(radius));
    renderProviders();
    loadSlots();
  }

  function stars(provider) {
    if (!provider.review_count) return "New · no reviews yet";
    const reviews = provider.review_count === 1 ? "1 review" : provider.review_count + " reviews";
    return "★ " + provider.rating.toFixed(1) + " (" + reviews + ")";
  }

  function renderProviders() {
    $("provider-count").textContent = "(" + providers.length + ")";
    const choice = $("provider-choice");
    const keep = choice.value;
    choice.replaceChildren(el("option", { value: "" }, "Any nearby provider"));
    providers.forEach(function (p) {
      choice.append(el("option", { value: p.id }, p.name + (p.distance_km !== null ? " · " + p.distance_km + " km" : "")));
    });
    choice.value = providers.some((p) => String(p.id) === keep) ? keep : "";
    if (!providers.length) {
      $("providers").replaceChildren(el("li", { class: "muted" },
        "No provider found here. Try a larger radius, another category, or include offline providers."));
      return;
    }
    $("providers").replaceChildren(
      ...providers.map(function (p, index) {
        const portfolio = p.portfolio && p.portfolio.length
          ? el("details", {},
            el("summary", {}, "Portfolio (" + p.portfolio.length + ")"),
            el("ul", {}, p.portfolio.map((entry) => el("li", {},
              entry.url ? el("a", { href: entry.url, target: "_blank", rel: "noopener" }, entry.title) : entry.title,
              entry.description ? " — " + entry.description : ""))))
          : el("p", { class: "muted" }, "No portfolio yet.");
        return el("li", { class: "provider", dataset: { providerId: p.id } },
          el("div", { class: "provider-head" },
            el("span", { class: "pin-number", "aria-hidden": "true" }, index + 1),
            el("strong", {}, p.name),
            el("span", { class: p.is_online ? "badge online" : "badge offline" }, p.is_online ? "Online" : "Offline")),
          el("p", { class: "facts" },
            el("span", {}, stars(p)),
            el("span", {}, p.price ? "from " + D.money(p.price) : "price on request"),
            el("span", {}, p.distance_km !== null ? p.distance_km + " km away" : "")),
          portfolio,
          el("button", {
            type: "button",
            "aria-label": "Choose " + p.name + " for your booking",
            onclick: function () {
              choice.value = String(p.id);
              loadSlots();
              $("address").focus();
              D.toast("Booking with " + p.name + ". Fill in the address and book.", "info");
            },
          }, "Choose"));
      })
    );
  }

  $("use-location").addEventListener("click", function () {
    const box = $("search-error");
    if (!navigator.geolocation) return fail(box, "This browser cannot share your location; enter latitude and longitude.");
    navigator.geolocation.getCurrentPosition(
      function (position) {
        $("lat").value = position.coords.latitude.toFixed(5);
        $("lng").value = position.coords.longitude.toFixed(5);
        search();
      },
      function (error) {
        fail(box, "Could not get your location (" + error.message + "). Enter latitude and longitude instead.");
      },
      { timeout: 10000 }
    );
  });

  searchForm.addEventListener("submit", function (submitted) {
    submitted.preventDefault();
    search();
  });
  $("category").addEventListener("change", function () {
    renderItems();
    search();
  });
  ["radius", "ordering", "online-only"].forEach((id) => $(id).addEventListener("change", search));

  /* ---- booking ---- */

  /* ---- free slots ---- */

  function slotMode() {
    return $("when-slot").checked;
  }

  /* A local date as YYYY-MM-DD: the browser's, or in `zone`. */
  function isoDate(moment, zone) {
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: zone || undefined, year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(moment);
    const part = (type) => parts.find((p) => p.type === type).value;
    return part("year") + "-" + part("month") + "-" + part("day");
  }

  function shiftDate(day, days) {
    const moment = new Date(day + "T12:00:00Z");
    moment.setUTCDate(moment.getUTCDate() + days);
    return moment.toISOString().slice(0, 10);
  }

  /* A start's wall-clock time where the provider works (the zone of the slot list). */
  function clock(iso, withDay) {
    const options = { hour: "2-digit", minute: "2-digit", timeZone: slotZone || undefined };
    if (withDay) Object.assign(options, { weekday: "short", day: "numeric", month: "short" });
    return new Date(iso).toLocaleString([], options);
  }

  function sameMoment(a, b) {
    return Boolean(a && b) && new Date(a).getTime() === new Date(b).getTime();
  }

  function setStart(iso) {
    $("scheduled-at").value = iso || "";
    $("book-button").textContent = !slotMode() ? "Book now" : iso ? "Book " + clock(iso, true) : "Book this slot";
  }

  function showSlotMode() {
    const on = slotMode();
    $("slot-picker").hidden = !on;
    if (on && !$("slot-date").value) $("slot-date").value = isoDate(new Date());
    setStart(on ? $("scheduled-at").value : "");
    if (on) loadSlots();
  }

  function slotNote(text, isError) {
    $("slot-note").textContent = text;
    $("slot-note").className = isError ? "error" : "muted";
  }

  /* The free starts on the chosen date: the chosen provider's, else anyone's nearby (with how many are free). */
  async function loadSlots() {
    if (!slotMode()) return;
    const mine = ++slotLoads;
    const list = $("slots");
    const day = $("slot-date").value;
    const items = chosenItems();
    const provider = $("provider-choice").value;
    const at = point();
    const stop = function (text) {
      list.replaceChildren();
      setStart("");
      slotNote(text, true);
    };
    if (!$("category").value) return stop("Choose a service category to see free starts.");
    if (!items.length) return stop("Pick at least one item: the free starts depend on how long the job takes.");
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return stop("Pick a date.");
    const query = new URLSearchParams({ date: day, item_ids: items.join(",") });
    let path = "/auth/providers/" + encodeURIComponent(provider) + "/slots/?";
    if (!provider) {
      if (!at) return stop("Set your location in the search above to see free starts nearby.");
      query.set("category", $("category").value);
      query.set("lat", at.lat);
      query.set("lng", at.lng);
      path = "/services/slots/?";
    }
    slotNote("Looking for free starts…");
    let answer;
    try {
      answer = await D.api(path + query);
    } catch (e) {
      if (mine === slotLoads) stop("Could not load the free starts: " + e.message);
      return;
    }
    if (mine === slotLoads) renderSlots(answer, provider);
  }

  function renderSlots(answer, provider) {
    slotZone = answer.time_zone;
    const list = $("slots");
    const wanted = pendingStart || $("scheduled-at").value;
    pendingStart = null;
    const kept = answer.slots.find((slot) => sameMoment(slot.start, wanted));
    setStart(kept ? kept.start : "");
    const who = provider ? ($("provider-choice").selectedOptions[0] || {}).textContent || "this provider" : "providers nearby";
    if (!answer.slots.length) {
      list.replaceChildren();
      slotNote("No free start on this day for " + who.split(" · ")[0] + ". Try another day" +
        (provider ? " or any nearby provider." : "."));
      return;
    }
    const count = answer.slots.length === 1 ? "1 free start" : answer.slots.length + " free starts";
    slotNote(count + " · the job takes " + answer.duration_min + " min · times in " + answer.time_zone + ".");
    list.replaceChildren(
      ...answer.slots.map(function (slot, index) {
        const id = "slot-" + index;
        return el("span", { class: "slot", dataset: { start: slot.start } },
          el("input", { type: "radio", name: "slot_start", id: id, value: slot.start, checked: slot === kept,
            onchange: () => setStart(slot.start) }),
          el("label", { for: id },
            clock(slot.start),
            slot.providers ? el("small", {}, slot.providers === 1 ? "1 free" : slot.providers + " free") : null));
      })
    );
  }

  /* Book at `iso` (a next free start): switch to its day and select it once the list is in. */
  function pickStart(iso) {
    $("when-slot").checked = true;
    $("slot-date").value = isoDate(new Date(iso), slotZone);
    pendingStart = iso;
    showSlotMode();
    $("book-form").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function startButtons(starts, label) {
    if (!starts || !starts.length) return null;
    return el("p", { class: "next-starts" }, label + " ",
      starts.map((iso) => el("button", { type: "button", class: "chip", onclick: () => pickStart(iso),
        "aria-label": "Pick the start " + clock(iso, true) }, clock(iso, true))));
  }

  document.querySelectorAll("input[name=when]").forEach((radio) => radio.addEventListener("change", showSlotMode));
  $("slot-date").min = isoDate(new Date());
  $("slot-date").addEventListener("change", loadSlots);
  $("slot-prev").addEventListener("click", function () {
    const day = shiftDate($("slot-date").value || isoDate(new Date()), -1);
    if (day >= $("slot-date").min) $("slot-date").value = day;
    loadSlots();
  });
  $("slot-next").addEventListener("click", function () {
    $("slot-date").value = shiftDate($("slot-date").value || isoDate(new Date()), 1);
    loadSlots();
  });
  $("provider-choice").addEventListener("change", loadSlots);
  $("items").addEventListener("change", loadSlots);
  ["lat", "lng"].forEach((id) => $(id).addEventListener("change", loadSlots));

  bookForm.addEventListener("submit", async function (submitted) {
    submitted.preventDefault();
    const box = $("book-error");
    const at = point();
    const body = {
      category: Number($("category").value),
      item_ids: chosenItems(),
      description: $("description").value.trim(),
      address: $("address").value.trim(),
      payment_method: bookForm.payment.value,
    };
    if (!body.category) return fail(box, "Choose a service category first.");
    if (!body.item_ids.length) return fail(box, "Pick at least one item.");
    if (!body.address) return fail(box, "Enter the address where the work is.");
    if (!at) return fail(box, "Set your location (latitude and longitude) in the search above.");
    body.latitude = at.lat;
    body.longitude = at.lng;
    if ($("provider-choice").value) body.provider = Number($("provider-choice").value);
    if (slotMode()) {
      if (!$("scheduled-at").value) return fail(box, "Pick one of the free start times.");
      body.scheduled_at = $("scheduled-at").value;
    }
    fail(box, "");
    $("book-next").replaceChildren();
    const button = $("book-button");
    button.disabled = true;
    try {
      const key = window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
      const job = await D.api("/services/jobs/", { body: body, headers: { "Idempotency-Key": key } });
      showJob(job); // its timeline starts with JOB_CREATED, from the event log
      loadJobs();
      loadWallet();
      if (body.scheduled_at) {
        setStart("");
        loadSlots(); // the start just taken leaves the list
      }
      $("status-card").scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (e) {
      if (body.scheduled_at && (e.status === 409 || e.status === 400)) {
        // Someone took it meanwhile (or it is now too soon): say why, offer the next ones, refresh the list.
        fail(box, "That start is no longer free. " + e.message);
        const next = startButtons(e.body && e.body.next_free_starts, "Next free starts:");
        if (next) $("book-next").replaceChildren(next);
        setStart("");
        loadSlots();
      } else {
        fail(box, "Booking failed: " + e.message);
      }
    } finally {
      button.disabled = false;
    }
  });

  async function loadWallet() {
    try {
      const wallet = await D.api("/wallet/");
      $("wallet").textContent = "(" + D.money(wallet.available) + " available)";
    } catch (e) {
      $("wallet").textContent = "(balance unavailable)";
    }
  }

  /* ---- the job's timeline ("Updates"): its events from the log when the job is shown, then live ---- */

  // The job whose timeline is shown, the event ids already on it, and which load is the latest.
  const timeline = { jobId: null, shown: new Set(), loads: 0 };

  /* An event's line as the customer reads it, or null for those shown elsewhere (chat, map). */
  function eventLine(event) {
    if (event.event === "NEW_MESSAGE" || event.event === "PROVIDER_LOCATION") return null;
    let message = event.message;
    if (event.event === "JOB_REMINDER" && event.starts_at) {
      message = "⏰ Reminder: job #" + event.job_id + " starts at " + D.when(event.starts_at) + ".";
    }
    if (event.event === "JOB_PROVIDER_RELEASED" && event.why === "no_show") {
      message = "🚩 " + (event.released_provider_name || "Your provider") + " did not show up. Finding you another provider…";
    }
    if (event.event === "JOB_UNFULFILLED" && event.alternatives && event.alternatives.length) {
      message += " Free starts nearby: " + event.alternatives.map((iso) => clock(iso, true)).join(", ") + ".";
    }
    return { text: message, kind: EVENT_KIND[event.event] || "info" };
  }

  /* JOB_UNFULFILLED may name free starts nearby: the status card offers them as buttons. */
  function rememberAlternatives(event) {
    if (event.event === "JOB_UNFULFILLED" && event.alternatives && event.alternatives.length) {
      alternatives.set(event.job_id, event.alternatives);
    }
  }

  /* Put an event of the shown job on its timeline, newest first, once: the log and the socket may both bring it. */
  function addToTimeline(event) {
    if (event.job_id !== timeline.jobId || typeof event.event_id !== "number" || timeline.shown.has(event.event_id)) return;
    const line = eventLine(event);
    if (!line) return;
    timeline.shown.add(event.event_id);
    const at = event.timestamp ? new Date(event.timestamp) : new Date();
    // In commit order (seq; the id for an event not numbered yet), not by arrival: a live event can
    // land while the older ones are still loading.
    const order = typeof event.seq === "number" ? event.seq : Number.MAX_SAFE_INTEGER;
    const item = el("li", { class: line.kind, dataset: { eventId: event.event_id, order: order } },
      el("time", { datetime: at.toISOString() }, at.toLocaleTimeString([], { timeStyle: "short" })), " ", line.text);
    const older = Array.from($("updates").children).find((li) => Number(li.dataset.order) < order);
    $("updates").insertBefore(item, older || null);
  }

  /* Show job `jobId`'s timeline from the event log, so a reload (or picking another booking) loses nothing. */
  async function openTimeline(jobId) {
    if (timeline.jobId === jobId) return;
    Object.assign(timeline, { jobId: jobId, shown: new Set() });
    $("updates").replaceChildren();
    const mine = ++timeline.loads;
    let events;
    try {
      events = await D.allRows("/services/jobs/" + jobId + "/events/?page_size=100");
    } catch (e) {
      if (mine === timeline.loads) $("updates").append(el("li", { class: "error" }, "Could not load the earlier updates: " + e.message));
      return;
    }
    if (mine !== timeline.loads) return; // another job was picked meanwhile
    const hadAlternatives = alternatives.has(jobId);
    events.forEach(rememberAlternatives);
    events.forEach(addToTimeline);
    if (!hadAlternatives && alternatives.has(jobId) && currentJob && currentJob.id === jobId) showJob(currentJob);
  }

  function offerProgress(job) {
    const offers = job.offers || [];
    if (!offers.length) return "Looking for a provider…";
    const count = (status) => offers.filter((o) => o.status === status).length;
    const parts = [offers.length === 1 ? "1 provider asked" : offers.length + " providers asked"];
    if (count("REJECTED")) parts.push(count("REJECTED") + " declined");
    if (count("EXPIRED")) parts.push(count("EXPIRED") + " did not answer");
    if (count("OFFERED")) parts.push("waiting for an answer");
    return parts.join(" · ");
  }

  function showJob(job) {
    clearTimeout(noShowTimer);
    if (!currentJob || currentJob.id !== job.id) {
      eta = null;
      map.setProviderLive(null);
      chatView = null;
      $("chat").replaceChildren();
    }
    currentJob = job;
    openTimeline(job.id);
    $("status-card").classList.add("has-job");
    map.setJob(job.latitude, job.longitude);
    if (!ACTIVE.includes(job.status)) map.setProviderLive(null);
    const provider = job.provider;
    const lines = [
      el("p", { class: "job-title" }, el("strong", {}, "#" + job.id + " " + job.category.name), " ", D.statusBadge(job.status)),
      el("p", {}, job.items.map((i) => i.name).join(", ") + " · " + D.money(job.total_price) + " · " +
        (job.payment_method === "WALLET" ? "Wallet" : "Cash")),
      el("p", { class: "muted" }, job.address + (job.scheduled_at ? " · slot " + D.when(job.scheduled_at) : " · now")),
    ];
    if (job.status === "PENDING") {
      lines.push(el("p", { class: "waiting" }, "⏳ Waiting for provider response…"), el("p", { class: "muted" }, offerProgress(job)));
    }
    if (provider && ACTIVE.includes(job.status)) {
      lines.push(el("p", {}, "Provider: ", el("strong", {}, provider.name),
        job.status === "ASSIGNED" ? " · 🚀 Ready to start!" : " · 🚀 Work in progress…"));
      if (calls) lines.push(el("p", { class: "call-line" }, calls.button(job, provider.name), calls.phoneLink(job, provider)));
      lines.push(el("p", { id: "eta", "aria-live": "polite" }, eta || "Live position shows when the provider shares it."));
    }
    if (job.status === "COMPLETED") lines.push(reviewForm(job), invoiceButton(job));
    if (job.status === "UNFULFILLED") {
      lines.push(el("p", {}, "😞 No provider was available. Try again later, widen the radius or pick a provider yourself."));
      lines.push(startButtons(alternatives.get(job.id), "Free starts nearby:"));
    }
    if (job.status === "ASSIGNED" && job.starts_at) {
      const due = new Date(job.starts_at).getTime() + NO_SHOW_GRACE_MS;
      const late = Date.now() >= due;
      lines.push(el("p", { class: late ? "waiting" : "muted" },
        (provider ? provider.name : "Your provider") + (late ? " was due at " : " is due at ") + D.when(job.starts_at) + "."));
      if (late) lines.push(noShowButton(job));
      else noShowTimer = setTimeout(() => currentJob && currentJob.id === job.id && showJob(currentJob),
        Math.min(due - Date.now() + 1000, 2 ** 31 - 1));
    }
    if (job.status === "PENDING" || job.status === "ASSIGNED") lines.push(cancelButton(job));
    lines.push(el("p", { id: "status-error", class: "error", role: "alert", hidden: true }));
    $("status-body").replaceChildren(...lines);
    if (provider && (!chatView || chatView.jobId !== job.id || chatView.status !== job.status)) {
      chatView = D.chat($("chat"), job, me);
      chatView.status = job.status;
    } else if (!provider) {
      $("chat").replaceChildren();
      chatView = null;
    }
  }

  function statusError(text) {
    fail($("status-error"), text);
  }

  function cancelButton(job) {
    return el("button", {
      type: "button",
      class: "danger",
      onclick: async function () {
        if (!window.confirm("Cancel request #" + job.id + "?")) return;
        try {
          showJob(await D.api("/services/jobs/" + job.id + "/cancel/", { method: "POST" }));
          loadJobs();
        } catch (e) {
          statusError("Could not cancel: " + e.message);
        }
      },
    }, "Cancel request");
  }

  function noShowButton(job) {
    return el("p", {}, el("button", {
      type: "button",
      class: "danger",
      onclick: async function () {
        this.disabled = true;
        try {
          showJob(await D.api("/services/jobs/" + job.id + "/no_show/", { method: "POST" }));
          loadJobs(); // JOB_PROVIDER_RELEASED follows on the socket
        } catch (e) {
          this.disabled = false;
          statusError(e.message);
        }
      },
    }, "🚩 Provider didn't show up"));
  }

  function invoiceButton(job) {
    return el("p", {}, el("button", {
      type: "button",
      onclick: async function () {
        try {
          await D.download("/services/jobs/" + job.id + "/invoice/", "invoice-" + job.id + ".pdf");
        } catch (e) {
          statusError("Could not download the invoice: " + e.message);
        }
      },
    }, "⬇ Download invoice (PDF)"));
  }

  function reviewForm(job) {
    const done = el("p", { class: "success", hidden: true }, "⭐ Thanks for your review!");
    const error = el("p", { class: "error", role: "alert", hidden: true });
    const comment = el("textarea", { id: "review-comment", rows: 2, maxlength: 2000, placeholder: "How did it go?" });
    const starsSet = el("fieldset", { class: "stars" }, el("legend", {}, "Rate " + (job.provider ? job.provider.name : "the provider")));
    [5, 4, 3, 2, 1].forEach(function (n) {
      starsSet.append(
        el("input", { type: "radio", name: "rating", id: "rating-" + n, value: n, checked: n === 5 }),
        el("label", { for: "rating-" + n, title: n + (n === 1 ? " star" : " stars") },
          el("span", { "aria-hidden": "true" }, "★"), el("span", { class: "visually-hidden" }, n + (n === 1 ? " star" : " stars")))
      );
    });
    const form = el("form", { class: "review", "aria-label": "Review job " + job.id },
      starsSet, el("label", { for: "review-comment" }, "Your review"), comment, error,
      el("button", { type: "submit", class: "primary" }, "Submit review"));
    form.addEventListener("submit", async function (submitted) {
      submitted.preventDefault();
      try {
        await D.api("/services/jobs/" + job.id + "/review/", {
          body: { rating: Number(form.rating.value), comment: comment.value.trim() },
        });
        reviewed.add(job.id);
        form.hidden = true;
        done.hidden = false;
      } catch (e) {
        fail(error, e.status === 409 ? e.message : "Review not saved: " + e.message);
      }
    });
    if (reviewed.has(job.id)) {
      form.hidden = true;
      done.hidden = false;
    }
    return el("div", {}, form, done);
  }

  async function refreshJob(jobId) {
    try {
      showJob(await D.api("/services/jobs/" + jobId + "/"));
    } catch (e) {
      D.showPageError("Could not refresh job #" + jobId + ": " + e.message);
    }
  }

  async function loadJobs(pickCurrent) {
    let jobs;
    try {
      jobs = D.rows(await D.api("/services/jobs/?page_size=20"));
    } catch (e) {
      return D.showPageError("Could not load your bookings: " + e.message);
    }
    $("jobs").replaceChildren(
      ...(jobs.length ? jobs.map((job) => el("li", {},
        el("button", { type: "button", class: "link-button", "aria-label": "Show request " + job.id,
          onclick: () => showJob(job) },
        "#" + job.id + " " + job.category.name), " ", D.statusBadge(job.status),
        el("span", { class: "muted" }, " " + D.when(job.created_at))))
        : [el("li", { class: "muted" }, "No bookings yet.")])
    );
    if (pickCurrent && jobs.length) showJob(jobs.find((j) => ACTIVE.includes(j.status)) || jobs[0]);
    else if (currentJob) {
      const fresh = jobs.find((j) => j.id === currentJob.id);
      if (fresh && (fresh.status !== currentJob.status || fresh.updated_at !== currentJob.updated_at)) showJob(fresh);
    }
  }

  function onEvent(event) {
    if (event.type !== "job_update") return;
    const isCurrent = currentJob && event.job_id === currentJob.id;
    if (event.event === "PROVIDER_LOCATION") {
      if (!isCurrent) return;
      eta = "📍 " + event.provider_name + " is about " + event.eta_minutes + " min away.";
      const line = $("eta");
      if (line) line.textContent = eta;
      map.setProviderLive(event.latitude, event.longitude, event.provider_name + " · about " + event.eta_minutes + " min away");
      return;
    }
    if (event.event === "NEW_MESSAGE") {
      D.toast(event.message, "info");
      if (chatView && chatView.jobId === event.job_id) chatView.refresh();
      return;
    }
    if (event.event === "CALL_STARTED" || event.event === "CALL_ENDED") {
      D.toast(event.message, "info");
      addToTimeline(event);
      return;
    }
    if (event.event === "JOB_CREATED") {
      // Our own booking, already shown; but say so when it waits for a dispatch worker.
      if (event.why === "queued") D.toast(event.message, "info");
      addToTimeline(event);
      return;
    }
    rememberAlternatives(event);
    const line = eventLine(event);
    D.toast(line.text, line.kind);
    if (!currentJob || isCurrent) {
      addToTimeline(event); // with no job shown yet, the job's timeline loads it from the log instead
      refreshJob(event.job_id);
    }
    loadJobs();
    loadSlots(); // a release or a cancel frees time; an accept takes it
  }

  (async function start() {
    await loadCategories();
    const first = $("category").options[1];
    if (first) {
      $("category").value = first.value;
      renderItems();
      search();
    }
    loadWallet();
    let opened = false;
    const socket = D.connectNotifications(function (frame) {
      if (!calls.handle(frame)) onEvent(frame);
    }, function () {
      loadJobs(!opened);
      opened = true;
    });
    calls = D.calls(socket);
  })();
});
