// Contrail: the little the pages need a script for. Everything works without it except the
// live updates; nothing here reads or stores the session (it is an HttpOnly cookie).
"use strict";

// A hold's countdown to its expiry.
for (const time of document.querySelectorAll("[data-expires]")) {
  const out = time.parentElement.querySelector("[data-countdown]");
  const ends = Date.parse(time.dataset.expires);
  if (!out || Number.isNaN(ends)) continue;
  const tick = () => {
    const left = Math.max(0, Math.round((ends - Date.now()) / 1000));
    const m = Math.floor(left / 60), s = String(left % 60).padStart(2, "0");
    out.textContent = left > 0 ? `(${m}:${s} left)` : "(the hold has run out; reload the page)";
    if (left === 0) clearInterval(timer);
  };
  const timer = setInterval(tick, 1000);
  tick();
}

// Ask before forms that cannot be undone.
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

for (const button of document.querySelectorAll("[data-print]")) {
  button.addEventListener("click", () => window.print());
}

// The seat map follows the flight: seats others hold or buy turn unavailable as it happens.
const map = document.querySelector("[data-live-seats]");
if (map && "EventSource" in window) {
  const status = map.querySelector("[data-live-status]");
  const events = new EventSource(map.dataset.liveSeats);
  events.addEventListener("seats", (event) => {
    const seats = JSON.parse(event.data);
    const free = {};
    let lost = [];
    for (const [seat, state] of Object.entries(seats)) {
      const input = document.getElementById("seat-" + seat);
      if (!input) continue;
      const label = input.nextElementSibling;
      const cabin = input.dataset.cabin;
      free[cabin] = (free[cabin] || 0) + (state === "available" ? 1 : 0);
      if (label.classList.contains(state)) continue;
      label.classList.remove("available", "held", "sold");
      label.classList.add(state);
      const said = label.querySelector(".vh");
      if (said) said.textContent = " " + state;
      input.disabled = state !== "available";
      if (input.checked && state !== "available") {
        input.checked = false;
        lost.push(seat);
      }
    }
    for (const [cabin, n] of Object.entries(free)) {
      const out = map.querySelector(`[data-free="${cabin}"]`);
      if (out) out.textContent = n;
    }
    if (status) {
      status.textContent = lost.length
        ? `Seat ${lost.join(", ")} was just taken by someone else; please pick another.`
        : "Seat map is live.";
    }
  });
  events.addEventListener("error", () => {
    if (status) status.textContent = "Reconnecting to live seat updates…";
  });
}

// Console: live traffic figures.
const traffic = document.querySelector("[data-traffic]");
if (traffic) {
  let last = null;
  const rows = (tbody, entries, cells) => {
    tbody.replaceChildren(...entries.map((entry) => {
      const tr = document.createElement("tr");
      for (const value of cells(entry)) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(td);
      }
      return tr;
    }));
  };
  const poll = async () => {
    try {
      const response = await fetch(traffic.dataset.traffic, { credentials: "same-origin" });
      if (!response.ok) return;
      const t = await response.json();
      const now = Date.now();
      if (last) {
        const rate = (t.bookings - last.bookings) / ((now - last.at) / 1000);
        traffic.querySelector("[data-rate]").textContent = rate.toFixed(1);
      }
      last = { bookings: t.bookings, at: now };
      traffic.querySelector("[data-bookings]").textContent = t.bookings;
      traffic.querySelector("[data-holds-expired]").textContent = t.holds_expired;
      traffic.querySelector("[data-refused-full]").textContent = t.refused_full;
      rows(document.querySelector("[data-failed]"), Object.entries(t.failed), ([k, n]) => [k.replaceAll("_", " "), n]);
      rows(document.querySelector("[data-payments]"), Object.entries(t.payments), ([k, n]) => [k, n]);
      rows(document.querySelector("[data-fullest]"), t.fullest, (f) => [f.flight_number, f.route, `${f.taken}/${f.seats}`, `${f.load_factor} %`]);
    } catch (_) { /* the next poll tries again */ }
  };
  poll();
  setInterval(poll, 2000);
}

// Console: members of the cluster, up or down, and what each owns.
const cluster = document.querySelector("[data-cluster]");
if (cluster) {
  const poll = async () => {
    try {
      const response = await fetch(cluster.dataset.cluster, { credentials: "same-origin" });
      if (!response.ok) return;
      const view = await response.json();
      if (view.members.length !== cluster.querySelectorAll("tr[data-node]").length) {
        window.location.reload();
        return;
      }
      for (const member of view.members) {
        const row = [...cluster.querySelectorAll("tr[data-node]")].find((r) => r.dataset.node === member.node_id);
        if (!row) { window.location.reload(); return; }
        const badge = row.querySelector("[data-status]");
        badge.textContent = member.status;
        badge.className = "badge " + member.status;
        const drain = row.querySelector("form");
        if (drain) drain.hidden = member.status !== "up";
        for (const key of ["flights", "orders", "tickets", "users"]) {
          row.querySelector(`[data-${key}]`).textContent = member.entities ? member.entities[key] : "–";
        }
      }
    } catch (_) { /* the next poll tries again */ }
  };
  setInterval(poll, 2000);
}
