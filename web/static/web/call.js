/* In-app voice calls between a job's customer and its provider: WebRTC audio, signalled over the notification
 * socket (docs/realtime.md#in-app-calls). Nobody's phone number is involved and nothing is recorded.
 *
 * `Dispatch.calls(socket)` returns a controller: `button(job, peerName)` makes a "Call" button, `handle(frame)`
 * takes every socket frame first and says whether it was a call's (relayed call frames, call replies,
 * CALL_STARTED/CALL_ENDED). One call at a time per page; the panel (#call-panel) shows it, its
 * `data-state` (calling, ringing, connecting, connected, ended) and `data-connection` (the peer connection's
 * state) say where it is.
 */
(function () {
  "use strict";
  const D = window.Dispatch;
  const el = D.el;
  const RING_FOR_MS = 45000; // the caller gives up after this ("unanswered"); the server forgets a call after 90 s
  const CANDIDATE_BATCH_MS = 100; // candidates go out in batches: the socket takes 20 frames a second
  // The job left ASSIGNED/IN_PROGRESS: no call may go on (the server refuses all but the hang-up).
  const JOB_OVER = ["JOB_COMPLETED", "JOB_CANCELLED", "JOB_RELEASED", "JOB_PROVIDER_RELEASED"];

  function newCallId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return "c" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function clock(seconds) {
    return Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
  }

  D.calls = function (socket) {
    let call = null; // {id, jobId, peerName, role: "caller"|"callee", pc, stream, offerSdp, remoteQueue, outQueue, ...}
    const replies = []; // kinds of the call frames sent, waiting for their call_ack or error, in order

    const status = el("p", { id: "call-status", "aria-live": "assertive" });
    const timer = el("span", { id: "call-timer", class: "muted" });
    const answerButton = el("button", { type: "button", id: "call-answer", class: "primary", onclick: answer }, "Answer");
    const declineButton = el("button", { type: "button", id: "call-decline", class: "secondary", onclick: decline }, "Decline");
    const hangupButton = el("button", { type: "button", id: "call-hangup", class: "danger", onclick: hangUp }, "Hang up");
    const audio = el("audio", { id: "call-audio", autoplay: true });
    const panel = el("section", { id: "call-panel", class: "call-panel card", hidden: true, "aria-label": "Call" },
      status, timer, el("div", { class: "call-actions" }, answerButton, declineButton, hangupButton), audio);
    document.body.append(panel);

    function show(state, text) {
      panel.hidden = state === "idle";
      panel.dataset.state = state;
      status.textContent = text || "";
      answerButton.hidden = declineButton.hidden = state !== "ringing";
      hangupButton.hidden = !["calling", "connecting", "connected"].includes(state);
    }
    show("idle");

    function send(kind, fields) {
      const frame = Object.assign({ type: kind, job_id: call.jobId, call_id: call.id }, fields || {});
      if (!socket.send(frame)) return false;
      replies.push(kind);
      return true;
    }

    function end(text, notify) {
      if (!call) return;
      const ending = call;
      if (notify) send("call_hangup", { reason: notify });
      call = null;
      clearTimeout(ending.ringTimer);
      clearInterval(ending.tick);
      clearTimeout(ending.flushTimer);
      if (ending.pc) {
        ending.pc.close(); // fires no connectionstatechange: say it here
        panel.dataset.connection = "closed";
      }
      if (ending.stream) ending.stream.getTracks().forEach((t) => t.stop());
      audio.srcObject = null;
      show("ended", text);
      setTimeout(() => { if (!call) show("idle"); }, 4000);
    }

    function peerConnection(setup) {
      const pc = new RTCPeerConnection({ iceServers: setup.ice_servers || [],
        iceTransportPolicy: setup.ice_transport_policy || "all" });
      pc.addEventListener("icecandidate", function (e) {
        if (!call || call.pc !== pc || !e.candidate) return;
        call.outQueue.push({ candidate: e.candidate.candidate, sdpMid: e.candidate.sdpMid,
          sdpMLineIndex: e.candidate.sdpMLineIndex });
        if (!call.flushTimer) call.flushTimer = setTimeout(flushCandidates, CANDIDATE_BATCH_MS);
      });
      pc.addEventListener("track", function (e) {
        audio.srcObject = e.streams[0] || new MediaStream([e.track]);
      });
      pc.addEventListener("connectionstatechange", function () {
        panel.dataset.connection = pc.connectionState;
        if (!call || call.pc !== pc) return;
        if (pc.connectionState === "connected" && panel.dataset.state !== "connected") {
          const since = Date.now();
          show("connected", "On a call with " + call.peerName);
          timer.textContent = clock(0);
          call.tick = setInterval(() => { timer.textContent = clock(Math.round((Date.now() - since) / 1000)); }, 1000);
        }
        if (pc.connectionState === "failed") end("The call could not connect.", "failed");
      });
      return pc;
    }

    function flushCandidates() {
      if (!call) return;
      call.flushTimer = null;
      while (call.outQueue.length) send("call_ice", { candidates: call.outQueue.splice(0, 20) });
    }

    async function addRemoteCandidates(candidates) {
      if (!call) return;
      if (!call.pc || !call.pc.remoteDescription) {
        call.remoteQueue.push(...candidates);
        return;
      }
      for (const candidate of candidates) {
        try {
          await call.pc.addIceCandidate(candidate);
        } catch (e) {
          /* A candidate the browser cannot use: the others may still connect. */
        }
      }
    }

    async function media() {
      return navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    }

    /* Place a call to the other party of `job`. */
    async function start(job, peerName) {
      if (call) return D.toast("You are already in a call.", "error");
      let setup;
      try {
        setup = await D.api("/services/jobs/" + job.id + "/call/");
      } catch (e) {
        return D.toast(e.message, "error");
      }
      call = { id: newCallId(), jobId: job.id, peerName: setup.peer.name || peerName, role: "caller",
        remoteQueue: [], outQueue: [] };
      const mine = call;
      show("calling", "Calling " + call.peerName + "…");
      try {
        mine.stream = await media();
      } catch (e) {
        return end("No microphone: allow the microphone to call.", "failed");
      }
      if (call !== mine) return;
      mine.pc = peerConnection(setup);
      mine.stream.getTracks().forEach((t) => mine.pc.addTrack(t, mine.stream));
      const offer = await mine.pc.createOffer();
      await mine.pc.setLocalDescription(offer);
      if (call !== mine) return;
      if (!send("call_offer", { sdp: offer.sdp })) return end("Not connected: try again in a moment.");
      mine.ringTimer = setTimeout(() => call === mine && end("No answer.", "unanswered"), RING_FOR_MS);
    }

    async function answer() {
      if (!call || call.role !== "callee" || panel.dataset.state !== "ringing") return;
      const mine = call;
      show("connecting", "Connecting to " + call.peerName + "…");
      let setup;
      try {
        setup = await D.api("/services/jobs/" + mine.jobId + "/call/");
        mine.stream = await media();
      } catch (e) {
        return end(e.message || "No microphone.", "failed");
      }
      if (call !== mine) return;
      mine.pc = peerConnection(setup);
      await mine.pc.setRemoteDescription({ type: "offer", sdp: mine.offerSdp });
      mine.stream.getTracks().forEach((t) => mine.pc.addTrack(t, mine.stream));
      const reply = await mine.pc.createAnswer();
      await mine.pc.setLocalDescription(reply);
      if (call !== mine) return;
      send("call_answer", { sdp: reply.sdp });
      const queued = mine.remoteQueue.splice(0);
      addRemoteCandidates(queued);
    }

    function decline() {
      if (call && call.role === "callee") end("Call declined.", "declined");
    }

    function hangUp() {
      if (call) end("Call ended.", "hangup");
    }

    /* A frame from the socket: true if it was a call's. */
    function handle(frame) {
      if (frame.type === "call_ack") {
        replies.shift();
        return true;
      }
      if (frame.type === "error" && replies.length) {
        const kind = replies.shift();
        if (call && (kind === "call_offer" || kind === "call_answer")) {
          end(frame.code === "busy" ? call.peerName + " is already on a call about this job." : frame.detail);
        }
        return true;
      }
      if (frame.type === "job_update" && call && call.jobId === frame.job_id && JOB_OVER.includes(frame.event)) {
        end("The job is " + (frame.event === "JOB_COMPLETED" ? "done" : "no longer live") + ": call ended.", "hangup");
        return false;
      }
      if (frame.type === "job_update" && (frame.event === "CALL_STARTED" || frame.event === "CALL_ENDED")) {
        if (call && call.id === frame.call_id) {
          // Answered in another tab, or ended on the other side while a frame of ours was on its way.
          if (frame.event === "CALL_STARTED" && call.role === "callee" && !call.pc) end("Answered on another device.");
          if (frame.event === "CALL_ENDED") end("Call ended.");
        }
        return false; // the page still tells it and adds it to the job's timeline
      }
      if (typeof frame.type !== "string" || !frame.type.startsWith("call_")) return false;
      if (frame.type === "call_offer") {
        if (call) {
          socket.send({ type: "call_busy", job_id: frame.job_id, call_id: frame.call_id });
          replies.push("call_busy");
          return true;
        }
        call = { id: frame.call_id, jobId: frame.job_id, peerName: frame.from.name, role: "callee",
          offerSdp: frame.sdp, remoteQueue: [], outQueue: [] };
        show("ringing", "📞 " + frame.from.name + " is calling about job #" + frame.job_id);
        call.ringTimer = setTimeout(() => call && call.id === frame.call_id && !call.pc && end("Missed call."), RING_FOR_MS);
        return true;
      }
      if (!call || call.id !== frame.call_id) return true; // an old call's late frame
      if (frame.type === "call_answer" && call.role === "caller") {
        clearTimeout(call.ringTimer);
        show("connecting", "Connecting to " + call.peerName + "…");
        const mine = call;
        mine.pc.setRemoteDescription({ type: "answer", sdp: frame.sdp }).then(function () {
          addRemoteCandidates(mine.remoteQueue.splice(0));
        });
      } else if (frame.type === "call_ice") {
        addRemoteCandidates(frame.candidates);
      } else if (frame.type === "call_busy") {
        end(call.peerName + " is busy.");
      } else if (frame.type === "call_hangup") {
        end({ declined: call.peerName + " declined the call.", disconnected: call.peerName + " was disconnected." }[frame.reason]
          || "Call ended.");
      }
      return true;
    }

    /* A "Call" button for a live job; `peerName` is the other party. */
    function button(job, peerName) {
      return el("button", { type: "button", class: "button", "data-call-job": job.id,
        "aria-label": "Call " + peerName + " in the app", onclick: () => start(job, peerName) }, "📞 Call " + peerName);
    }

    /* How to phone the other party, beside the in-app call: with masking on a button that asks for the job's
     * masked number (`job.contact.bridge`) and then dials it; with it off their real number; else nothing. */
    function phoneLink(job, party) {
      const dial = (number, label) => el("a", { class: "button secondary", href: "tel:" + number.replace(/[^+0-9]/g, ""),
        "aria-label": label }, "☎ " + number);
      if (party.phone) return dial(party.phone, "Phone " + party.name + " at " + party.phone);
      if (!job.contact || !job.contact.bridge) return null;
      const ask = el("button", { type: "button", class: "secondary", "aria-label": "Get a masked number for " + party.name,
        onclick: async function () {
          ask.disabled = true;
          try {
            const line = await D.api(job.contact.bridge, { method: "POST" });
            ask.replaceWith(dial(line.number, "Phone " + party.name + " through the masked number " + line.number),
              el("span", { class: "muted" }, " reaches " + party.name + " from your own phone while the job is on"));
          } catch (e) {
            ask.disabled = false;
            D.toast(e.message, "error");
          }
        } }, "☎ Phone number");
      return ask;
    }

    window.addEventListener("beforeunload", () => call && end("", "disconnected"));
    return { button: button, handle: handle, phoneLink: phoneLink, start: start };
  };
})();
