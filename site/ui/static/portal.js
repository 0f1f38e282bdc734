// The passkey sign-in of the citizen portal: the one flow that needs
// script, because WebAuthn has no form. It asks the state's identity
// service (same origin) for a challenge, lets the browser's passkey sign
// it, posts the answer, and follows the provider's redirects back to the
// portal, which then has a session.
(function () {
  "use strict";
  var box = document.getElementById("passkey");
  var button = document.getElementById("passkey-button");
  var status = document.getElementById("passkey-status");
  if (!box || !button || !window.PublicKeyCredential || !PublicKeyCredential.parseRequestOptionsFromJSON) {
    if (status) status.textContent = "This browser cannot use passkeys here; sign in with your eID below.";
    return;
  }
  var q = "?authRequestID=" + encodeURIComponent(box.dataset.authRequest);
  button.hidden = false;
  button.addEventListener("click", function () {
    button.disabled = true;
    status.textContent = "Waiting for your passkey…";
    fetch("/passkey/login/begin" + q, {method: "POST", credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error("the sign-in expired; reload the page"); return r.json(); })
      .then(function (b) {
        return navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(b.options.publicKey)});
      })
      .then(function (cred) {
        return fetch("/passkey/login/finish" + q, {method: "POST", credentials: "same-origin",
          headers: {"Content-Type": "application/json"}, body: JSON.stringify(cred.toJSON())});
      })
      .then(function (r) {
        if (!r.ok || r.url.indexOf("/portal/") < 0) {
          return r.text().then(function (t) { throw new Error(t || String(r.status)); });
        }
        status.textContent = "Signed in.";
        location.assign(r.url);
      })
      .catch(function (e) {
        status.textContent = "The passkey was not accepted: " + e.message;
        button.disabled = false;
      });
  });
})();
