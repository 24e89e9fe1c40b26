/*
 * Newsletter sign-up forms that answer inline (any form[data-api]).
 *
 * On our pages the form is in the HTML: without JavaScript it posts to the HTML
 * endpoint and the server renders the result. With it, the same fields go to the JSON
 * API and the server's answer shows without leaving the page: a field's error under the
 * field, in its own live region (role="alert" in the templates: focusing a field that
 * already has the focus reads nothing out), tied to it by aria-invalid and
 * aria-describedby; anything else (success, the rate limit) in the form's aria-live
 * region. If the request cannot be
 * made at all (network failure), the form falls back to the normal POST.
 *
 * On another site, the embed's placeholder ([data-newsroom-signup]) names the URL of
 * its form; this script fetches the form from us, puts it in the placeholder and
 * enhances it the same way. Such a form fetches its signed form token (data-token-url)
 * as it is rendered, and loads the optional human check's script if it has one.
 *
 * A sign-up the server cannot tell from a bot's (sent within seconds of the render, or
 * with a token used for another address) is not made: the answer says so and carries a
 * fresh token, and the reader presses the button again to confirm.
 *
 * No dependencies, no inline handlers (CSP-friendly).
 */
(function () {
  "use strict";

  // The page (or the embed snippet) gives these in its own language.
  var DEFAULT_GENERIC_ERROR = "Sorry, something went wrong. Please try again in a moment.";
  var DEFAULT_RATE_LIMIT_ERROR = "Too many attempts. Please wait a few minutes and try again.";

  function firstMessage(list) {
    if (Array.isArray(list) && list.length) {
      var first = list[0];
      if (typeof first === "string") return first;
      if (first && typeof first.message === "string") return first.message;
    }
    if (typeof list === "string") return list;
    return "";
  }

  function addToken(element, attribute, token) {
    var tokens = (element.getAttribute(attribute) || "").split(/\s+/).filter(Boolean);
    if (tokens.indexOf(token) === -1) tokens.push(token);
    element.setAttribute(attribute, tokens.join(" "));
  }

  function removeToken(element, attribute, token) {
    var tokens = (element.getAttribute(attribute) || "").split(/\s+/).filter(function (t) {
      return t && t !== token;
    });
    if (tokens.length) element.setAttribute(attribute, tokens.join(" "));
    else element.removeAttribute(attribute);
  }

  // The answer's language: the form's own (an embed's lang), else the page's.
  function languageOf(form) {
    var named = form.querySelector('[name="lang"]');
    var holder = form.closest("[lang]");
    return (
      form.getAttribute("data-lang") ||
      (named && named.value) ||
      (holder && holder.getAttribute("lang")) ||
      ""
    );
  }

  // Also on the URL, not only in the body: the API refuses a client over its rate
  // limit before reading the body, and that refusal should speak the form's language.
  function withLanguage(url, language) {
    if (!language || /[?&]lang=/.test(url)) return url;
    return url + (url.indexOf("?") === -1 ? "?" : "&") + "lang=" + encodeURIComponent(language);
  }

  function enhance(form) {
    var api = form.getAttribute("data-api");
    if (!api || !window.fetch || form.getAttribute("data-enhanced") === "true") return;
    form.setAttribute("data-enhanced", "true");

    var GENERIC_ERROR = form.getAttribute("data-error-generic") || DEFAULT_GENERIC_ERROR;
    var RATE_LIMIT_ERROR = form.getAttribute("data-error-rate-limit") || DEFAULT_RATE_LIMIT_ERROR;
    var region = form.querySelector(".signup-message");
    var button = form.querySelector('button[type="submit"], input[type="submit"]');
    var emailInput = form.querySelector('[name="email"]');
    var pageUrl = form.querySelector('input[name="page_url"]');
    var inFlight = false;

    if (pageUrl) pageUrl.value = window.location.href;
    var tokenReady = fetchToken(form);

    // The server is the single judge of a valid address, so its message (the one the
    // product promises) is what readers see, in the page's own accessible style.
    form.noValidate = true;

    function fieldTarget(field) {
      if (field === "email") return emailInput;
      if (field === "newsletters") {
        return form.querySelector("fieldset") || null;
      }
      return null;
    }

    function errorElement(field) {
      return form.querySelector('[data-error-for="' + field + '"]');
    }

    function setMessage(text, kind) {
      if (!region) return;
      region.classList.remove("is-success", "is-error");
      if (kind) region.classList.add(kind === "success" ? "is-success" : "is-error");
      region.textContent = text || "";
    }

    function clearFieldError(field) {
      var element = errorElement(field);
      var target = fieldTarget(field);
      if (element) {
        element.textContent = "";
        element.hidden = true;
      }
      if (target) {
        if (target.tagName !== "FIELDSET") target.removeAttribute("aria-invalid");
        if (element && element.id) removeToken(target, "aria-describedby", element.id);
      }
    }

    function showFieldError(field, text) {
      var element = errorElement(field);
      var target = fieldTarget(field);
      if (!element || !target) return null;
      element.textContent = text;
      element.hidden = false;
      // aria-invalid is not supported on a fieldset; the description carries it there.
      if (target.tagName !== "FIELDSET") target.setAttribute("aria-invalid", "true");
      if (element.id) addToken(target, "aria-describedby", element.id);
      return target;
    }

    function clearErrors() {
      clearFieldError("email");
      clearFieldError("newsletters");
    }

    function chosenNewsletters() {
      var values = [];
      var inputs = form.querySelectorAll('[name="newsletters"]');
      for (var i = 0; i < inputs.length; i++) {
        var input = inputs[i];
        if (input.type === "checkbox" || input.type === "radio") {
          if (input.checked) values.push(input.value);
        } else if (input.value) {
          values.push(input.value);
        }
      }
      return values;
    }

    function valueOf(name) {
      var input = form.querySelector('[name="' + name + '"]');
      return input ? input.value : "";
    }

    function setBusy(busy) {
      inFlight = busy;
      if (button) button.disabled = busy;
      if (busy) form.setAttribute("aria-busy", "true");
      else form.removeAttribute("aria-busy");
    }

    function fallback() {
      // The request never reached the server: let the browser do the ordinary POST.
      // form.submit() does not fire "submit" again, so this cannot loop.
      setBusy(false);
      HTMLFormElement.prototype.submit.call(form);
    }

    function handleErrors(errors) {
      errors = errors || {};
      // Each message shows once: under its field when the form has one (an alert of
      // its own), else in the form's live region.
      var focusTarget = null;
      var unplaced = "";
      var fields = ["newsletters", "email"];
      for (var i = 0; i < fields.length; i++) {
        var text = firstMessage(errors[fields[i]]);
        if (!text) continue;
        var target = showFieldError(fields[i], text);
        if (target) focusTarget = target;
        else unplaced = unplaced || text;
      }
      var general = firstMessage(errors.__all__);
      if (!general && !unplaced) {
        for (var key in errors) {
          if (Object.prototype.hasOwnProperty.call(errors, key) && fields.indexOf(key) === -1) {
            general = firstMessage(errors[key]);
            if (general) break;
          }
        }
      }
      var regionText = general || unplaced;
      if (regionText || !focusTarget) setMessage(regionText || GENERIC_ERROR, "error");

      if (focusTarget && focusTarget.tagName === "FIELDSET") {
        focusTarget = focusTarget.querySelector("input") || null;
      }
      if (focusTarget && typeof focusTarget.focus === "function") focusTarget.focus();
    }

    function handleResponse(response) {
      return response
        .json()
        .catch(function () {
          return null;
        })
        .then(function (body) {
          body = body || {};
          if (response.status === 202 || (response.ok && body.message)) {
            setMessage(body.message || "", "success");
            if (emailInput) emailInput.value = "";
            return;
          }
          if (response.status === 400 && typeof body.form_token === "string") {
            // Not signed up yet: the reader confirms by pressing the button again.
            setToken(form, body.form_token);
            setMessage(firstMessage(body.errors && body.errors.form_token) || GENERIC_ERROR, "error");
            if (button) button.focus();
            return;
          }
          if (response.status === 400) {
            handleErrors(body.errors);
            return;
          }
          if (response.status === 429) {
            var text =
              body.message ||
              body.detail ||
              (body.errors && (firstMessage(body.errors.__all__) || firstMessage(body.errors.email))) ||
              RATE_LIMIT_ERROR;
            setMessage(text, "error");
            return;
          }
          setMessage(body.message || GENERIC_ERROR, "error");
        });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (inFlight) return;
      if (pageUrl) pageUrl.value = window.location.href;
      clearErrors();
      setMessage("", null);
      setBusy(true);

      var payload = {
        email: emailInput ? emailInput.value : "",
        newsletters: chosenNewsletters(),
        website: valueOf("website"),
        form_token: valueOf("form_token"),
        page_url: pageUrl ? pageUrl.value : window.location.href
      };
      var language = languageOf(form);
      if (language) payload.lang = language;
      // The optional human check (Turnstile or hCaptcha) leaves its answer in the form.
      var challenge = form.querySelector('[name="cf-turnstile-response"], [name="h-captcha-response"]');
      if (challenge) payload[challenge.name] = challenge.value;

      var request;
      try {
        // A reader quicker than the token's arrival waits for it (a moment at most).
        request = tokenReady.then(function () {
          payload.form_token = valueOf("form_token");
          return window.fetch(withLanguage(api, language), {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: "application/json" },
            credentials: "omit",
            body: JSON.stringify(payload)
          });
        });
      } catch (error) {
        fallback();
        return;
      }

      request.then(
        function (response) {
          return handleResponse(response).then(
            function () {
              setBusy(false);
            },
            function () {
              setBusy(false);
              setMessage(GENERIC_ERROR, "error");
            }
          );
        },
        fallback
      );
    });

    if (emailInput) {
      emailInput.addEventListener("input", function () {
        if (emailInput.getAttribute("aria-invalid") === "true") clearFieldError("email");
      });
    }
    var boxes = form.querySelectorAll('input[type="checkbox"][name="newsletters"]');
    for (var i = 0; i < boxes.length; i++) {
      boxes[i].addEventListener("change", function () {
        clearFieldError("newsletters");
      });
    }
  }

  function setToken(form, token) {
    var input = form.querySelector('input[name="form_token"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = "form_token";
      form.appendChild(input);
    }
    input.value = token;
  }

  // A form put into another site's page carries no token of its own (its HTML is
  // cached); it asks for one as it is rendered, so the time trap counts from now.
  function fetchToken(form) {
    var url = form.getAttribute("data-token-url");
    if (!url) return Promise.resolve();
    return window
      .fetch(url, { credentials: "omit", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (body) {
        if (body && typeof body.form_token === "string") setToken(form, body.form_token);
      })
      .catch(function () {
        /* The API answers with a fresh token, and the reader confirms once more. */
      });
  }

  // The optional human check in an embed: load the provider's script once; a widget
  // inserted after it loaded is rendered through the provider's global.
  function loadChallenge(container) {
    var widgets = container.querySelectorAll("[data-challenge-script]");
    for (var i = 0; i < widgets.length; i++) {
      var widget = widgets[i];
      var provider = window[widget.getAttribute("data-challenge-global")];
      if (provider && typeof provider.render === "function") {
        provider.render(widget);
        continue;
      }
      var src = widget.getAttribute("data-challenge-script");
      if (document.querySelector('script[src="' + src + '"]')) continue;
      var script = document.createElement("script");
      script.src = src;
      script.async = true;
      document.head.appendChild(script);
    }
  }

  function render(placeholder) {
    var url = placeholder.getAttribute("data-newsroom-signup");
    if (!url || !window.fetch || placeholder.getAttribute("data-rendered") === "true") return;
    placeholder.setAttribute("data-rendered", "true");
    window
      .fetch(url, { credentials: "omit", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html || !html.trim()) return;
        placeholder.innerHTML = html;
        var form = placeholder.querySelector("form[data-api]");
        if (form) enhance(form);
        loadChallenge(placeholder);
      })
      .catch(function () {
        /* Keep the link to our newsletter page that the snippet shows without us. */
      });
  }

  function init() {
    var forms = document.querySelectorAll("form[data-api]");
    for (var i = 0; i < forms.length; i++) enhance(forms[i]);
    var placeholders = document.querySelectorAll("[data-newsroom-signup]");
    for (var j = 0; j < placeholders.length; j++) render(placeholders[j]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
