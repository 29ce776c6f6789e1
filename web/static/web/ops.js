/* The ops page: dispatch KPIs, disabled webhooks (enable), overdue starts (mark a no-show), money (who owes
 * commission and recording their cash; payouts: pay out, export) and live jobs with each offer's score breakdown. */
window.Dispatch.page("ops", function (me, D) {
  "use strict";
  const el = D.el;
  const $ = D.byId;
  const fail = D.fail;
  const REFRESH_MS = 3000;
  const COMPONENTS = ["distance", "rating", "availability", "acceptance", "fairness"];

  const percent = (x) => (x === null ? "—" : Math.round(x * 100) + " %");
  const seconds = (x) => (x === null ? "—" : x < 120 ? x.toFixed(1) + " s" : (x / 60).toFixed(1) + " min");
  const number = (x) => (x === null ? "—" : String(x));

  function renderKpis(kpis) {
    const byStatus = kpis.jobs_by_status;
    const tiles = [
      ["Jobs waiting for a provider", byStatus.PENDING],
      ["Jobs assigned", byStatus.ASSIGNED],
      ["Jobs in progress", byStatus.IN_PROGRESS],
      ["Live offers", kpis.live_offers],
      ["Providers online", kpis.providers_online + " / " + kpis.providers_total],
      ["Bookings", kpis.bookings],
      ["Assigned share", percent(kpis.assigned_share)],
      ["Median time to assign", seconds(kpis.median_seconds_to_assign)],
      ["Offer acceptance rate", percent(kpis.offer_acceptance_rate)],
      ["Offers per assigned job", number(kpis.offers_per_assigned_job)],
      ["Unfulfilled", kpis.unfulfilled],
      ["Completed (all time)", byStatus.COMPLETED],
    ];
    $("kpi-window").textContent = "(rates over the last " + kpis.window_hours + " h)";
    $("kpis").replaceChildren(...tiles.map(([label, value]) => el("div", { class: "kpi" }, el("dt", {}, label), el("dd", {}, value))));
  }

  // A queue with no consumer is an outage of that worker: bookings are still taken, and wait.
  function renderQueues(queues) {
    const down = queues.filter((q) => q.consumers === 0);
    $("queue-alerts").hidden = !down.length;
    $("queue-alerts").textContent = down.map((q) => "⚠️ No worker consumes the " + q.queue + " queue: " + q.waiting +
      " waiting, oldest " + seconds(q.lag_seconds) + (q.queue === "offers" ? ". Bookings are taken and queued until a worker is back." : ".")).join(" ");
    $("queues").textContent = queues.length
      ? "Queues: " + queues.map((q) => q.queue + " " + q.waiting + " waiting (" + q.consumers + " worker" + (q.consumers === 1 ? "" : "s") + ")").join(" · ")
      : "";
  }

  function breakdown(offer) {
    const parts = offer.score_breakdown || {};
    if (!Object.keys(parts).length) return el("span", { class: "muted" }, "direct booking / no breakdown");
    return el("ul", { class: "breakdown" },
      COMPONENTS.filter((name) => name in parts).map((name) => el("li", {},
        name + " " + Number(parts[name]).toFixed(2) +
        (parts[name + "_points"] !== undefined ? " → " + Number(parts[name + "_points"]).toFixed(3) : ""))),
      "recent_offers" in parts ? el("li", {}, "recent offers " + parts.recent_offers) : null);
  }

  function offerRow(offer) {
    const live = offer.status === "OFFERED";
    const left = live ? Math.max(0, Math.round((new Date(offer.expires_at) - Date.now()) / 1000)) + " s left" : D.when(offer.responded_at);
    return el("tr", { class: live ? "live-offer" : "" },
      el("td", {}, offer.rank),
      el("td", {}, el("a", { href: "/admin/dispatch/user/" + offer.provider_id + "/change/" }, "#" + offer.provider_id)),
      el("td", {}, offer.status),
      el("td", {}, offer.score === null ? "—" : offer.score.toFixed(3)),
      el("td", {}, breakdown(offer)),
      el("td", {}, left));
  }

  function jobItem(job) {
    return el("li", { class: "ops-job" },
      el("p", { class: "job-title" }, el("strong", {}, "#" + job.id + " " + job.category.name), " ", D.statusBadge(job.status),
        " ", el("span", { class: "muted" }, D.money(job.total_price) + " · " + job.payment_method + " · booked " + D.when(job.created_at))),
      el("p", { class: "muted" }, job.customer.name + " · " + job.address +
        (job.provider ? " · provider " + job.provider.name : job.requested_provider ? " · asked for #" + job.requested_provider : " · any nearby provider")),
      job.offers.length
        ? el("div", { class: "table-wrap" }, el("table", { "aria-label": "Offers of job " + job.id },
          el("thead", {}, el("tr", {}, ["Rank", "Provider", "Status", "Score", "Score breakdown", "Deadline / answered"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, job.offers.map(offerRow))))
        : el("p", { class: "muted" }, "No offer sent yet."));
  }

  // A button that calls the API once, then refreshes the page (or says what went wrong and can be tried again).
  function actionButton(label, attrs, what, path, options) {
    const button = el("button", Object.assign({ type: "button" }, attrs), label);
    button.addEventListener("click", async function () {
      button.disabled = true;
      try {
        await D.api(path, options);
        refresh();
      } catch (e) {
        D.showPageError(what + ": " + e.message);
        button.disabled = false;
      }
    });
    return button;
  }

  function overdueItem(item) {
    const button = actionButton("🚩 Mark no-show", { class: "danger" }, "Job #" + item.job_id,
      "/services/jobs/" + item.job_id + "/no_show/", { method: "POST" });
    return el("li", { class: "ops-job", "data-job": item.job_id },
      el("p", {}, el("strong", {}, "#" + item.job_id), " provider #" + item.provider_id + " · due by " + D.when(item.due_by) +
        " · " + item.address, " ", button));
  }

  // Endpoints that failed too often in a row get nothing until ops enable them (docs/realtime.md, Webhooks).
  function webhookItem(hook) {
    const button = actionButton("Enable", {}, "Webhook #" + hook.id, "/ops/webhooks/" + hook.id + "/",
      { method: "PATCH", body: { active: true } });
    return el("li", { class: "ops-job", "data-webhook": hook.id },
      el("p", {}, el("strong", {}, "#" + hook.id + " " + hook.url), " · disabled " + D.when(hook.disabled_at) + " · " +
        hook.deliveries_waiting + " waiting ", button),
      el("p", { class: "muted" }, hook.disabled_reason));
  }

  /* ---- money: who owes commission (and recording their cash), payouts ---- */

  function owingItem(provider) {
    const amount = el("input", { inputmode: "decimal", value: provider.owed, "aria-label": "Cash amount from " + provider.name });
    const reference = el("input", { placeholder: "Receipt no.", "aria-label": "Receipt number for " + provider.name });
    const record = el("button", { type: "button", onclick: async function () {
      if (!reference.value.trim()) return fail($("money-error"), "Give the receipt's number for " + provider.name + ".");
      record.disabled = true;
      try {
        await D.api("/ops/providers/" + provider.provider_id + "/settlements/",
          { body: { amount: amount.value.trim(), reference: reference.value.trim() } });
        D.toast("💵 Cash from " + provider.name + " recorded.", "success");
        fail($("money-error"), "");
      } catch (e) {
        fail($("money-error"), "Not recorded: " + e.message);
      }
      record.disabled = false;
      loadMoney();
    } }, "Record cash");
    return el("li", { class: "ops-job", "data-provider": provider.provider_id },
      el("p", {}, el("strong", {}, provider.name), " owes " + D.money(provider.owed),
        provider.blocked ? el("span", { class: "badge status-cancelled" }, "no requests: over the limit") : null),
      el("p", { class: "actions" }, amount, reference, record));
  }

  function payoutItem(payout) {
    return el("li", { class: "ops-job", "data-payout": payout.id },
      el("p", {}, el("strong", {}, "#" + payout.id + " " + payout.provider_name), " · " + D.money(payout.amount) + " · " +
        payout.status + " · " + D.when(payout.created_at) + (payout.failure_reason ? " · " + payout.failure_reason : "")));
  }

  async function loadMoney() {
    try {
      const owing = D.rows(await D.api("/ops/dues/?page_size=50"));
      const payouts = D.rows(await D.api("/ops/payouts/?page_size=10"));
      $("owing-count").textContent = "(" + owing.length + ")";
      $("owing").replaceChildren(...(owing.length ? owing.map(owingItem) : [el("li", { class: "muted" }, "Nobody owes anything.")]));
      $("payouts").replaceChildren(...(payouts.length ? payouts.map(payoutItem) : [el("li", { class: "muted" }, "No payouts yet.")]));
    } catch (e) {
      fail($("money-error"), "Could not load money: " + e.message);
    }
  }

  $("pay-out-all").addEventListener("click", async function () {
    const button = $("pay-out-all");
    button.disabled = true;
    try {
      const made = await D.api("/ops/payouts/batch/", { body: {} });
      D.toast(made.created.length ? "💸 " + made.created.length + " payouts made." : "Nobody is due a payout (today's are made).",
        made.created.length ? "success" : "info");
      fail($("money-error"), "");
    } catch (e) {
      fail($("money-error"), "Payouts not made: " + e.message);
    }
    button.disabled = false;
    loadMoney();
  });
  $("export-payouts").addEventListener("click", async function () {
    try {
      await D.download("/ops/payouts/export/", "payouts.csv");
    } catch (e) {
      fail($("money-error"), "Could not export: " + e.message);
    }
  });

  async function refresh() {
    try {
      const data = await D.api("/ops/dashboard/");
      renderKpis(data.kpis);
      renderQueues(data.queues);
      $("webhooks-card").hidden = !data.webhooks_disabled.length;
      $("webhooks-count").textContent = "(" + data.webhooks_disabled.length + ")";
      $("webhooks-disabled").replaceChildren(...data.webhooks_disabled.map(webhookItem));
      $("overdue-count").textContent = "(" + data.overdue_starts.length + ")";
      $("overdue").replaceChildren(...(data.overdue_starts.length ? data.overdue_starts.map(overdueItem) : [el("li", { class: "muted" }, "None.")]));
      $("live-count").textContent = "(" + data.live_jobs_count + ")";
      $("live-jobs").replaceChildren(...(data.live_jobs.length ? data.live_jobs.map(jobItem) : [el("li", { class: "muted" }, "No live jobs.")]));
      $("updated").textContent = "Updated " + new Date(data.generated_at).toLocaleTimeString([], { timeStyle: "medium" });
      D.showPageError("");
    } catch (e) {
      D.showPageError("Could not load the dashboard: " + e.message);
    }
  }

  /* /metrics answers only ops in production, and a link sends no token: fetch it with ours, show it in a new tab. */
  $("metrics-link").addEventListener("click", async function (clicked) {
    clicked.preventDefault();
    const tab = window.open("", "_blank"); // now, while the click still lets a page open one
    if (!tab) return D.showPageError("The browser blocked the new tab for the metrics; allow pop-ups for this page.");
    try {
      const text = await (await D.api("/metrics", { raw: true, accept: "text/plain" })).text();
      tab.document.title = "Dispatch metrics";
      tab.document.body.replaceChildren(Object.assign(tab.document.createElement("pre"), { textContent: text }));
    } catch (e) {
      tab.close();
      D.showPageError("Could not load the metrics: " + e.message);
    }
  });
  $("refresh").addEventListener("click", function () {
    refresh();
    loadMoney();
  });
  setInterval(function () {
    if ($("auto-refresh").checked && !document.hidden) refresh();
  }, REFRESH_MS);
  refresh();
  loadMoney();
});
