/* The admin status view: the token is typed here and sent as a header (never in a URL);
 * it stays in this tab's sessionStorage only. */
(function () {
  "use strict";
  const KEY = "softdigits-admin-token";
  const form = document.getElementById("login");
  const input = document.getElementById("token");
  const message = document.getElementById("login-message");
  const out = document.getElementById("status");

  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function table(rows, columns) {
    const head = columns.map((c) => `<th>${esc(c)}</th>`).join("");
    const body = rows.map((r) => `<tr>${columns.map((c) => `<td>${esc(r[c] ?? "")}</td>`).join("")}</tr>`).join("");
    return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  }

  function counts(obj) {
    return table(Object.entries(obj).map(([k, v]) => ({ what: k, count: v })), ["what", "count"]);
  }

  async function show(token) {
    const response = await fetch("/admin/api/status", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
    if (!response.ok) {
      sessionStorage.removeItem(KEY);
      message.textContent = response.status === 401 ? "Wrong token." : `The server answered ${response.status}.`;
      out.hidden = true;
      return;
    }
    sessionStorage.setItem(KEY, token);
    const s = await response.json();
    message.textContent = "";
    out.hidden = false;
    out.innerHTML =
      `<p>Corpus <b>${esc(s.corpus)}</b>; campaign ${esc(s.campaign)}; database ${esc(s.database)}; ` +
      `${s.answered_trials} trials answered. <button id="refresh">Refresh</button></p>` +
      `<h2>Task lists</h2>${counts(s.lists)}` +
      `<h2>Participants</h2>${counts(s.participants)}` +
      `<h2>Attention-check failures</h2>` +
      (s.attention_check_failures.length
        ? table(s.attention_check_failures, ["participant_id", "task_id", "checks_failed"])
        : "<p>None.</p>") +
      `<h2>Lists</h2>${table(s.task_lists, ["task_id", "n_trials", "state", "n_finished", "doubled", "n_assigned", "n_returned"])}`;
    document.getElementById("refresh").addEventListener("click", () => show(token));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show(input.value.trim());
  });
  const saved = sessionStorage.getItem(KEY);
  if (saved) show(saved);
})();
