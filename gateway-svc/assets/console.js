// The console's one script: keeps /console/live current from its event
// stream. Text goes in with textContent only, never as HTML.
"use strict";
(function () {
  const feed = document.querySelector("#live-feed tbody");
  const counters = document.querySelector("#live-counters tbody");
  const status = document.getElementById("live-status");
  if (!feed || !counters || !window.EventSource) return;
  const MAX_ROWS = 200;
  const groups = new Map();
  const rows = new Map();
  const fmt = (n) => n.toLocaleString("en-US");

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function renderCounter(g) {
    let tr = counters.querySelector('tr[data-group="' + g.id + '"]');
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.group = g.id;
      const name = document.createElement("td");
      const a = document.createElement("a");
      a.href = "/console/groups/" + g.id;
      name.appendChild(a);
      tr.appendChild(name);
      for (const f of ["redemptions", "redeemed_amount", "remaining_amount"]) {
        cell(tr, "", "num").dataset.field = f;
      }
      counters.prepend(tr);
    }
    tr.querySelector("a").textContent = g.name;
    tr.querySelector('[data-field="redemptions"]').textContent = fmt(g.redemptions) + " / " + fmt(g.capacity);
    tr.querySelector('[data-field="redeemed_amount"]').textContent = fmt(g.redeemed_amount) + " " + g.currency;
    tr.querySelector('[data-field="remaining_amount"]').textContent = fmt(g.remaining_amount) + " " + g.currency;
  }

  function setStatus(text, cls) {
    status.textContent = text;
    status.className = "badge " + cls;
  }

  const source = new EventSource("/console/live/events");
  source.addEventListener("open", () => setStatus("live", "live"));
  source.addEventListener("error", () => setStatus("reconnecting…", "pending"));
  source.addEventListener("snapshot", (e) => {
    // A fresh read of every group's stats: counters start (again) from it.
    for (const g of JSON.parse(e.data)) {
      groups.set(g.id, g);
      renderCounter(g);
    }
    setStatus("live", "live");
  });
  source.addEventListener("redeemed", (e) => {
    const r = JSON.parse(e.data);
    if (rows.has(r.redemption_id)) return;
    const g = groups.get(r.group_id);
    if (g && !r.counted) {
      g.redemptions += 1;
      g.redeemed_amount += r.amount;
      g.remaining_amount -= r.amount;
      renderCounter(g);
    }
    const tr = document.createElement("tr");
    tr.className = "fresh";
    tr.dataset.redemption = r.redemption_id;
    cell(tr, new Date(r.redeemed_at).toISOString().replace("T", " ").slice(0, 19) + " UTC", "when");
    cell(tr, r.group_name || (g && g.name) || r.group_id);
    cell(tr, fmt(r.amount) + " " + r.currency, "num");
    cell(tr, r.phone, "num");
    const st = document.createElement("span");
    st.className = "badge pending";
    st.textContent = "pending";
    tr.appendChild(document.createElement("td")).appendChild(st);
    feed.prepend(tr);
    rows.set(r.redemption_id, st);
    while (feed.rows.length > MAX_ROWS) {
      const last = feed.rows[feed.rows.length - 1];
      rows.delete(last.dataset.redemption);
      last.remove();
    }
  });
  source.addEventListener("reversed", (e) => {
    // A redemption undone: counted out; its row (or a new one) says so.
    const r = JSON.parse(e.data);
    const g = groups.get(r.group_id);
    if (g && !r.counted) {
      g.redemptions -= 1;
      g.redeemed_amount -= r.amount;
      if (r.release_code) g.remaining_amount += r.amount;
      renderCounter(g);
    }
    let st = rows.get(r.redemption_id);
    if (!st) {
      const tr = document.createElement("tr");
      tr.className = "fresh";
      tr.dataset.redemption = r.redemption_id;
      cell(tr, new Date(r.reversed_at).toISOString().replace("T", " ").slice(0, 19) + " UTC", "when");
      cell(tr, (g && g.name) || r.group_id);
      cell(tr, "−" + fmt(r.amount) + " " + r.currency, "num");
      cell(tr, r.phone, "num");
      st = document.createElement("span");
      tr.appendChild(document.createElement("td")).appendChild(st);
      feed.prepend(tr);
      rows.set(r.redemption_id, st);
    }
    st.className = "badge reversed";
    st.textContent = r.release_code ? "reversed, code released" : "reversed";
  });
  source.addEventListener("credited", (e) => {
    const c = JSON.parse(e.data);
    const st = rows.get(c.redemption_id);
    if (st && st.textContent === "pending") {
      st.className = "badge credited";
      st.textContent = "credited";
    }
  });
})();
