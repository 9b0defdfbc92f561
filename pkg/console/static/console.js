// Aorta console: small niceties and the live events view. No inline
// script is allowed (Content-Security-Policy), so everything is here.
"use strict";

// Buttons with data-confirm ask before their form is sent.
document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-confirm]");
  if (b && !window.confirm(b.dataset.confirm)) {
    e.preventDefault();
  }
});

// The live view: follows the console's event stream (Server-Sent Events,
// the API's stream code) with fetch, so that every event type arrives
// whatever its name, and resumes after the last seq when the connection
// drops. Rows are added with textContent only: event fields are never
// interpreted as HTML.
(function live() {
  const table = document.getElementById("live");
  if (!table) return;
  const tbody = table.tBodies[0];
  const state = document.getElementById("live-state");
  const maxRows = 500;
  let after = null; // last seq received
  let retry = 1000;

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function show(ev) {
    const tr = document.createElement("tr");
    tr.className = "new";
    cell(tr, ev.seq, "num");
    cell(tr, ev.type);
    cell(tr, iso(ev.occurred_at));
    cell(tr, iso(ev.recorded_at));
    cell(tr, ev.patient_key);
    cell(tr, ev.encounter_id);
    cell(tr, ev.route);
    const td = cell(tr, "");
    const a = document.createElement("a");
    a.href = "/console/messages/" + encodeURIComponent(ev.message_id);
    a.textContent = "message";
    td.appendChild(a);
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.rows.length > maxRows) tbody.deleteRow(tbody.rows.length - 1);
  }

  // Times as the server-rendered pages show them: ISO 8601, UTC, ms.
  function iso(s) {
    if (!s) return "";
    const d = new Date(s);
    return isNaN(d.getTime()) ? s : d.toISOString();
  }

  function status(text) { if (state) state.textContent = text; }

  async function follow() {
    const url = new URL(table.dataset.stream, window.location.href);
    if (after !== null) url.searchParams.set("after", after);
    let resp;
    try {
      resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/event-stream" } });
    } catch (err) {
      return again("connection failed");
    }
    if (resp.status === 401) {
      status("Session ended: log in again.");
      window.location.assign("/console/login?next=" + encodeURIComponent(location.pathname + location.search));
      return;
    }
    if (!resp.ok || !resp.body) {
      let msg = "HTTP " + resp.status;
      try { msg = (await resp.json()).error || msg; } catch (_) {}
      return again(msg);
    }
    status("Live: following new events.");
    retry = 1000;
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        return again("connection lost");
      }
      if (chunk.done) return again("stream ended");
      buf += chunk.value;
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let id = null, data = "";
        for (const line of frame.split("\n")) {
          if (line.startsWith("id: ")) id = line.slice(4);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (!data) continue; // a heartbeat
        try { show(JSON.parse(data)); } catch (_) { continue; }
        if (id !== null) after = id;
      }
    }
  }

  function again(why) {
    status("Disconnected (" + why + "); reconnecting…");
    setTimeout(follow, retry);
    retry = Math.min(retry * 2, 30000);
  }

  follow();
})();
