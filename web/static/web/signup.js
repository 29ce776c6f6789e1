/* Sign-up: POST /auth/register/ as a customer or a provider, errors next to their fields; then the role's page. */
(function () {
  "use strict";
  const D = window.Dispatch;
  const form = document.getElementById("signup-form");
  const error = document.getElementById("signup-error");
  const FIELDS = ["name", "phone", "username", "password"];

  const current = D.session();
  if (current && current.token) window.location.replace(D.homeFor(current.user));

  function show(field, message) {
    const box = document.getElementById("error-" + field);
    box.textContent = message || "";
    box.hidden = !message;
    form[field].setAttribute("aria-invalid", message ? "true" : "false");
  }

  form.addEventListener("submit", async function (submitted) {
    submitted.preventDefault();
    FIELDS.forEach((field) => show(field, ""));
    error.hidden = true;
    const body = {
      role: form.role.value,
      name: form.name.value.trim(),
      phone: form.phone.value.trim(),
      username: form.username.value.trim(),
      password: form.password.value,
    };
    if (!body.username) return show("username", "Choose a username.");
    if (!body.password) return show("password", "Choose a password.");
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const answer = await D.api("/auth/register/", { body: body });
      D.saveSession(answer.token, answer.user);
      window.location.assign(D.homeFor(answer.user));
    } catch (e) {
      button.disabled = false;
      const data = (e.body && typeof e.body === "object") ? e.body : {};
      const placed = FIELDS.filter(function (field) {
        const said = data[field] || (data.field === field ? data.detail : null);
        if (!said) return false;
        show(field, Array.isArray(said) ? said.join(" ") : String(said));
        return true;
      });
      if (placed.length) {
        form[placed[0]].focus();
      } else {
        error.textContent = e.message;
        error.hidden = false;
      }
    }
  });
})();
