// The citizen portal's passkey ceremonies, the one part of the portal
// that needs script, because WebAuthn has no form: signing in (the
// browser's passkey answers the state's identity service, same origin,
// which then sends the browser back to the portal with a code) and
// registering a passkey once signed in (relayed by the portal with the
// session's token; the page's CSRF token goes in a header).
(function () {
  "use strict";
  var ok = window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON && window.fetch;
  function setup(boxID, buttonID, statusID, run) {
    var box = document.getElementById(boxID);
    if (!box) return;
    var button = document.getElementById(buttonID);
    var status = document.getElementById(statusID);
    if (!ok) {
      status.textContent = "This browser cannot use passkeys here.";
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      button.disabled = true;
      status.textContent = "Waiting for your passkey…";
      run(box).then(function (msg) {
        status.textContent = msg;
      }).catch(function (e) {
        status.textContent = "The passkey was not accepted: " + e.message;
      }).then(function () { button.disabled = false; });
    });
  }
  function json(r) {
    if (!r.ok) return r.text().then(function (t) { throw new Error(t || String(r.status)); });
    return r.json();
  }
  setup("passkey", "passkey-button", "passkey-status", function (box) {
    var q = "?authRequestID=" + encodeURIComponent(box.dataset.authRequest);
    return fetch("/passkey/login/begin" + q, {method: "POST", credentials: "same-origin"}).then(json)
      .then(function (b) {
        return navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(b.options.publicKey)});
      })
      .then(function (cred) {
        return fetch("/passkey/login/finish" + q, {method: "POST", credentials: "same-origin",
          headers: {"Content-Type": "application/json"}, body: JSON.stringify(cred.toJSON())});
      })
      .then(function (r) {
        if (!r.ok || r.url.indexOf("/portal/records") < 0) {
          return r.text().then(function (t) { throw new Error(t || String(r.status)); });
        }
        location.assign(r.url);
        return "Signed in.";
      });
  });
  setup("passkey-register", "passkey-register-button", "passkey-register-status", function (box) {
    var h = {"X-CSRF-Token": box.dataset.csrf};
    return fetch("/portal/passkeys/begin", {method: "POST", credentials: "same-origin", headers: h}).then(json)
      .then(function (b) {
        return navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(b.options.publicKey)})
          .then(function (cred) {
            return fetch("/portal/passkeys/finish?session=" + encodeURIComponent(b.session), {method: "POST", credentials: "same-origin",
              headers: Object.assign({"Content-Type": "application/json"}, h), body: JSON.stringify(cred.toJSON())});
          });
      })
      .then(json)
      .then(function () { return "Your passkey is registered. Next time, sign in with it."; });
  });
})();
