/* Sign-in: POST /auth/login/, keep the token in sessionStorage, go to the page for the user's role. */
(function () {
  "use strict";
  const D = window.Dispatch;
  const form = document.getElementById("signin-form");
  const error = document.getElementById("signin-error");

  const current = D.session();
  if (current && current.token) window.location.replace(D.homeFor(current.user));

  form.addEventListener("submit", async function (submitted) {
    submitted.preventDefault();
    const username = form.username.value.trim();
    const password = form.password.value;
    if (!username || !password) {
      error.textContent = "Enter your username and password.";
      error.hidden = false;
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const answer = await D.api("/auth/login/", { body: { username: username, password: password } });
      D.saveSession(answer.token, answer.user);
      const next = new URLSearchParams(window.location.search).get("next");
      const home = D.homeFor(answer.user);
      window.location.assign(next === home ? next : home);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      button.disabled = false;
    }
  });
})();
