// Operations board: live without reloading. Server-sent events (/api/board/events) bring the
// incidents and camera states as they change; each camera's newest frame is polled (a 304 when
// nothing newer came); acknowledge and close go through the JSON API with the session's
// anti-forgery token. Everything is built with DOM calls and textContent: no markup from data.
(function () {
  "use strict";
  var root = document.getElementById("board");
  if (!root) { return; }
  var TZ = root.dataset.timezone || "Asia/Ho_Chi_Minh";
  var REFRESH_MS = parseInt(root.dataset.refreshMs, 10) || 250;
  var CSRF = root.dataset.csrf || "";
  var canAct = root.dataset.canAct === "true";
  var canSeeImages = root.dataset.canSeeImages === "true";
  var incidents = new Map();   // incident_id -> view
  var cameras = new Map();     // camera_id -> view
  var pollers = new Map();     // camera_id -> poller state
  var photos = new Map();      // sha256 -> Promise<{url, ok}>
  var STATUS = { "new": "Mới", acknowledged: "Đã tiếp nhận", closed: "Đã đóng" };
  var STALE_MS = 10000;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; }
      else if (key === "className") { node.className = attrs[key]; }
      else if (key.indexOf("data-") === 0) { node.setAttribute(key, attrs[key]); }
      else { node[key] = attrs[key]; }
    });
    (children || []).forEach(function (child) { if (child) { node.appendChild(child); } });
    return node;
  }
  function localTime(iso, withDate) {
    if (!iso) { return ""; }
    var options = { timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
    if (withDate) { options.day = "2-digit"; options.month = "2-digit"; options.year = "numeric"; }
    return new Date(iso).toLocaleString("vi-VN", options);
  }
  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600), m = Math.floor(seconds % 3600 / 60);
    if (d) { return d + " ngày " + h + " giờ"; }
    if (h) { return h + " giờ " + m + " phút"; }
    return m + " phút " + (seconds % 60) + " giây";
  }
  function liveDuration(i) {
    if (!i.cleared_at && i.occurred_at) { return Math.max(i.duration_s, (Date.now() - Date.parse(i.occurred_at)) / 1000); }
    return i.duration_s;
  }
  function hex(buffer) {
    return Array.from(new Uint8Array(buffer)).map(function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  // --- live status ------------------------------------------------------------------------------
  var live = document.getElementById("live-status");
  function setLive(state, text) { live.dataset.state = state; live.textContent = text; }

  // --- incidents --------------------------------------------------------------------------------
  function photo(e) {
    // Each evidence image is fetched once (each fetch is audited) and checked against its SHA-256.
    if (!photos.has(e.sha256)) {
      photos.set(e.sha256, fetch(e.url, { credentials: "same-origin" }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.arrayBuffer();
      }).then(function (bytes) {
        var url = URL.createObjectURL(new Blob([bytes], { type: "image/jpeg" }));
        if (!window.crypto || !window.crypto.subtle) { return { url: url, ok: null }; }
        return window.crypto.subtle.digest("SHA-256", bytes).then(function (d) { return { url: url, ok: hex(d) === e.sha256 }; });
      }));
    }
    var img = el("img", { alt: "Ảnh chứng cứ " + e.kind });
    var mark = el("figcaption", { className: "sha-check", text: "đang tải…" });
    photos.get(e.sha256).then(function (result) {
      img.src = result.url;
      mark.textContent = result.ok === null ? "máy chủ đã kiểm tra" : result.ok ? "✓ khớp mã SHA-256" : "✗ KHÔNG khớp mã SHA-256";
      mark.className = "sha-check " + (result.ok === false ? "bad" : "ok");
    }).catch(function (error) {
      mark.textContent = "✗ không tải được ảnh (" + error.message + ")";
      mark.className = "sha-check bad";
    });
    var figure = el("figure", { className: "incident-photo", "data-sha256": e.sha256, title: "Bấm để phóng to / thu nhỏ" }, [img, mark]);
    img.addEventListener("click", function () { figure.classList.toggle("zoom"); });
    return figure;
  }

  function actionForm(i, action) {
    var closing = action === "closed";
    var note = el("input", { name: "note", maxLength: 500, required: closing,
                             placeholder: closing ? "Đã xử lý thế nào (bắt buộc để đóng)" : "Ghi chú tiếp nhận (không bắt buộc)" });
    note.setAttribute("aria-label", closing ? "Ghi chú đóng sự cố" : "Ghi chú tiếp nhận");
    var form = el("form", { className: closing ? "close-form" : "ack-form", method: "post",
                            action: "/dieu-hanh/su-co/" + encodeURIComponent(i.incident_id) + "/" + action }, [
      el("input", { type: "hidden", name: "csrf_token", value: CSRF }), note,
      el("button", { type: "submit", className: closing ? "secondary" : "", text: closing ? "Đóng sự cố" : "Tiếp nhận" })]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button");
      button.disabled = true;
      fetch("/api/incidents/" + encodeURIComponent(i.incident_id) + (closing ? "/close" : "/acknowledge"), {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
        body: JSON.stringify({ note: note.value })
      }).then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { throw new Error(body.error || ("HTTP " + response.status)); }
          upsertIncident(body);  // the event stream brings the same a moment later
        });
      }).catch(function (error) {
        button.disabled = false;
        var card = document.getElementById("inc-" + i.incident_id);
        var message = card && card.querySelector(".form-error");
        if (message) { message.textContent = error.message; }
      });
    });
    return form;
  }

  function incidentCard(i) {
    var where = "Camera " + i.camera_id + (i.address ? " · " + i.address : "") + (i.lane ? " · làn " + i.lane : "") +
      (i.zone ? " · vùng " + i.zone : "");
    var when = (i.occurred_at ? "Bắt đầu " + localTime(i.occurred_at, true) : "Chưa nhận sự kiện phát hiện") + " · kéo dài ";
    var children = [
      el("header", {}, [el("span", { className: "sev", text: i.severity_label }), document.createTextNode(" "),
                        el("strong", { className: "type", text: i.type_label }), document.createTextNode(" "),
                        el("span", { className: "status", text: STATUS[i.status] || i.status })]),
      el("p", { className: "where", text: where }),
      el("p", { className: "when" }, [document.createTextNode(when),
                                      el("span", { className: "duration", text: duration(liveDuration(i)) })])
    ];
    if (i.traffic) {
      children.push(el("p", { className: "traffic", text: i.traffic.level_label + ": " + i.traffic.vehicles + " xe trong làn, hàng chờ " +
        i.traffic.queue_vehicles + " xe, chiếm " + Math.round(i.traffic.occupancy * 100) + "% làn" }));
    }
    if (i.last_change) { children.push(el("p", { className: "change", text: "Thay đổi: " + i.last_change })); }
    if (i.cleared_at) {
      children.push(el("p", { className: "cleared", text: "Đã kết thúc lúc " + localTime(i.cleared_at, true) + " (" + (i.clear_label || i.clear_reason) + ")" }));
    }
    if (i.acknowledged_at) {
      var who = i.acknowledged_by_name ? i.acknowledged_by_name + " (" + i.acknowledged_by + ")" : i.acknowledged_by;
      children.push(el("p", { className: "ack", text: "Tiếp nhận: " + who + " lúc " + localTime(i.acknowledged_at, true) +
        (i.acknowledge_note ? " – “" + i.acknowledge_note + "”" : "") }));
    }
    if (i.evidence.length) {
      var shown = i.evidence.filter(function (e) { return e.url; });
      children.push(el("div", { className: "photos" }, shown.length ? shown.map(photo) :
        [el("p", { className: "muted", text: i.evidence.length + " ảnh chứng cứ (vai trò của bạn không xem ảnh)." })]));
    }
    if (canAct && i.status !== "closed") {
      children.push(el("div", { className: "incident-actions" }, [
        i.status === "new" ? actionForm(i, "acknowledged") : null, actionForm(i, "closed"),
        el("p", { className: "form-error", role: "alert" })]));
    }
    return el("article", { className: "incident sev-" + i.severity + " status-" + i.status + (i.cleared_at ? " is-cleared" : ""),
                           id: "inc-" + i.incident_id, "data-id": i.incident_id }, children);
  }

  function rank(i) {  // unacknowledged first, then ongoing, then by severity, newest first
    var sev = { critical: 0, warning: 1, info: 2 }[i.severity];
    return [i.status === "new" ? 0 : 1, i.cleared_at ? 1 : 0, sev === undefined ? 3 : sev,
            -Date.parse(i.detected_at || i.updated_at || i.changed_at)];
  }
  function compare(a, b) {
    var ra = rank(a), rb = rank(b);
    for (var k = 0; k < ra.length; k++) { if (ra[k] !== rb[k]) { return ra[k] < rb[k] ? -1 : 1; } }
    return 0;
  }

  function renderIncidents() {
    var list = document.getElementById("incident-list");
    var open = Array.from(incidents.values()).filter(function (i) { return i.status !== "closed"; }).sort(compare);
    // Keep a card whose form is being typed in: re-rendering it would lose the operator's note.
    var active = document.activeElement && document.activeElement.closest && document.activeElement.closest(".incident");
    var wanted = open.map(function (i) {
      var existing = document.getElementById("inc-" + i.incident_id);
      if (existing && existing === active && existing.dataset.changed === i.changed_at) { return existing; }
      var card = incidentCard(i);
      card.dataset.changed = i.changed_at;
      if (existing && existing === active) {  // keep what was typed
        existing.querySelectorAll("input[name=note]").forEach(function (input, k) {
          var fresh = card.querySelectorAll("input[name=note]")[k];
          if (fresh) { fresh.value = input.value; }
        });
      }
      return card;
    });
    list.replaceChildren.apply(list, wanted.length ? wanted : [el("p", { className: "muted", id: "no-incidents", text: "Không có sự cố nào đang mở." })]);
    if (active && wanted.indexOf(active) < 0) {
      var again = document.getElementById(active.id);
      var input = again && again.querySelector("input[name=note]");
      if (input) { input.focus(); }
    }
    markTiles(open);
    document.getElementById("incident-count").textContent = open.length;
    document.getElementById("incident-new").textContent = open.filter(function (i) { return i.status === "new"; }).length;
  }

  function markTiles(open) {  // each tile says how many open incidents its camera has
    document.querySelectorAll(".tile").forEach(function (node) {
      var n = open.filter(function (i) { return i.camera_id === node.dataset.camera; }).length;
      var badge = node.querySelector(".tile-incidents");
      if (!n) { if (badge) { badge.remove(); } node.classList.remove("has-incidents"); return; }
      if (!badge) { badge = el("span", { className: "tile-incidents" }); node.querySelector(".frame").appendChild(badge); }
      badge.textContent = "⚠ " + n + " sự cố";
      node.classList.add("has-incidents");
    });
  }

  function upsertIncident(i) {
    var known = incidents.get(i.incident_id);
    if (known && Date.parse(known.changed_at) > Date.parse(i.changed_at)) { return; }  // an older copy
    incidents.set(i.incident_id, i);
    renderIncidents();
  }

  // --- camera wall ------------------------------------------------------------------------------
  function tile(c) {
    var node = document.getElementById("cam-" + c.camera_id);
    if (!node) {
      var frame = el("div", { className: "frame" }, [
        c.frame_url ? el("img", { alt: "Hình ảnh mới nhất của camera " + c.camera_id })
                    : el("p", { className: "muted", text: "Vai trò của bạn không xem hình ảnh camera." }),
        el("span", { className: "frame-time" })]);
      node = el("figure", { id: "cam-" + c.camera_id, "data-camera": c.camera_id }, [frame, el("figcaption")]);
      var none = document.getElementById("no-cameras");
      if (none) { none.remove(); }
      document.getElementById("tiles").appendChild(node);
    }
    node.className = "tile state-" + c.state;
    var caption = node.querySelector("figcaption");
    var lights = el("span", { className: "lights" }, c.signals.map(function (s) {
      return el("span", { className: "lamp phase-" + s.phase, title: "Đèn " + s.head + ": " + s.phase_label + " từ " + localTime(s.phase_since),
                          text: s.head + ": " + s.phase_label });
    }));
    caption.replaceChildren(el("b", { text: c.camera_id }), document.createTextNode(" "),
      el("span", { className: "health", text: c.state_label + " · " + c.fps_out.toFixed(1) + " khung/giây" + (c.reason ? " · " + c.reason : "") }),
      document.createTextNode(" "), lights);
    if (c.frame_url && !pollers.has(c.camera_id)) { startPoller(c, node); }
    markTiles(Array.from(incidents.values()).filter(function (i) { return i.status !== "closed"; }));
  }

  function updateCameraCount() {
    var all = Array.from(cameras.values());
    document.getElementById("camera-count").textContent =
      all.filter(function (c) { return c.state === "online"; }).length + "/" + all.length;
  }

  function startPoller(c, node) {
    var img = node.querySelector("img");
    var stamp = node.querySelector(".frame-time");
    var state = { etag: "", url: null, stopped: false, frames: 0 };
    pollers.set(c.camera_id, state);
    function next() { if (!state.stopped) { setTimeout(poll, document.hidden ? 2000 : REFRESH_MS); } }
    function poll() {
      var headers = state.etag ? { "If-None-Match": state.etag } : {};
      fetch(c.frame_url, { credentials: "same-origin", cache: "no-store", headers: headers }).then(function (response) {
        if (response.status === 304) { return null; }
        if (!response.ok) { throw new Error(response.status === 404 ? "chưa có khung hình" : "HTTP " + response.status); }
        state.etag = response.headers.get("ETag") || "";
        var captured = response.headers.get("X-Captured-At");
        return response.blob().then(function (blob) {
          var url = URL.createObjectURL(blob);
          img.onload = function () { if (state.url && state.url !== url) { URL.revokeObjectURL(state.url); } state.url = url; };
          img.src = url;
          state.frames += 1;
          node.dataset.frames = state.frames;
          node.dataset.etag = state.etag;
          state.captured = captured ? Date.parse(captured) : null;
        });
      }).then(function () {
        // A picture older than STALE_MS (the camera stopped sending) is marked as such.
        var old = state.captured && Date.now() - state.captured > STALE_MS;
        stamp.textContent = state.captured ? (old ? "ảnh cũ " : "") + localTime(new Date(state.captured).toISOString()) : "";
        stamp.classList.toggle("stale", !!old);
      }).catch(function (error) {
        stamp.textContent = error.message;
        stamp.classList.add("stale");
      }).then(next);
    }
    poll();
  }

  function upsertCamera(c) {
    cameras.set(c.camera_id, c);
    tile(c);
    updateCameraCount();
  }

  // --- the event stream -------------------------------------------------------------------------
  function snapshot(s) {
    canAct = s.can_act;
    canSeeImages = s.can_see_images;
    incidents.clear();
    s.incidents.forEach(function (i) { incidents.set(i.incident_id, i); });
    renderIncidents();
    s.cameras.forEach(upsertCamera);
  }
  function connect() {
    var source = new EventSource("/api/board/events");
    source.addEventListener("open", function () { setLive("on", "● Trực tiếp"); });
    source.addEventListener("error", function () { setLive("off", "Mất kết nối, đang thử lại…"); });
    source.addEventListener("snapshot", function (e) { snapshot(JSON.parse(e.data)); root.dataset.snapshots = (parseInt(root.dataset.snapshots || "0", 10) + 1); });
    source.addEventListener("incident", function (e) { upsertIncident(JSON.parse(e.data)); });
    source.addEventListener("camera", function (e) { upsertCamera(JSON.parse(e.data)); });
  }
  // The page came with the state at load: pollers start at once, the stream then takes over.
  document.querySelectorAll(".tile[data-frame-url]").forEach(function (node) {
    if (node.dataset.frameUrl) { startPoller({ camera_id: node.dataset.camera, frame_url: node.dataset.frameUrl }, node); }
  });
  setInterval(function () {  // ongoing incidents: the duration counts up
    incidents.forEach(function (i) {
      var span = document.querySelector("#inc-" + CSS.escape(i.incident_id) + " .duration");
      if (span && !i.cleared_at) { span.textContent = duration(liveDuration(i)); }
    });
  }, 1000);
  connect();
})();
