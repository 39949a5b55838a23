// Redeem an enrolment token: the key's secret is generated here, in the person's browser, and
// sent once to POST /v1/enrol (the API call `hub enrol` makes), which keeps only its salted HMAC.
"use strict";

(() => {
  function newSecret() {
    // 32 random bytes, URL-safe base64 without padding: 43 characters, as
    // secrets.token_urlsafe(32) in `hub enrol`.
    const bytes = new Uint8Array(32);
    crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode(...bytes))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  const show = (id, value) => { document.getElementById(id).textContent = value; };
  const form = document.getElementById("enrol-form");

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    show("enrol-error", "");
    const token = form.elements.token.value.trim();
    const second = form.elements.second.value.trim();
    if (!token) { show("enrol-error", "Paste your enrolment token."); return; }
    const secret = newSecret();
    const body = { token, secret };
    if (second) body.second_half = second;
    const button = document.getElementById("enrol-submit");
    button.disabled = true;
    try {
      // No cookie and no API key: the token is the credential (a console session is not the
      // person's, and the API refuses a key that is not the token's owner's).
      const response = await fetch("/v1/enrol", {
        method: "POST",
        credentials: "omit",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      let answer = {};
      try { answer = await response.json(); } catch (err) { /* not JSON */ }
      if (!response.ok) {
        show("enrol-error", answer.message || `${response.status} ${response.statusText}`);
        return;
      }
      form.reset();
      form.hidden = true;
      show("enrol-key-id", answer.key_id);
      show("enrol-who", `${answer.owner}: ${answer.roles.join(", ")} in ${answer.tenant}`);
      show("enrol-key", `${answer.key_id}:${secret}`);
      document.getElementById("enrol-done").hidden = false;
    } catch (err) {
      show("enrol-error", `The hub did not answer: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  });
})();
