// Keyboard shortcuts for the reviewer pages. Everything works without this script: it only
// moves the focus. A key picks the element marked data-shortcut="KEY" (a radio button is
// checked, anything else is focused and highlighted); Enter then carries the action out,
// so that a stray key press never decides a case on its own.
"use strict";
(function () {
  function typing(element) {
    if (!element || !element.tagName) {
      return false;
    }
    var tag = element.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select" || element.isContentEditable) {
      return true;
    }
    if (tag !== "input") {
      return false;
    }
    var type = (element.getAttribute("type") || "text").toLowerCase();
    return ["radio", "checkbox", "submit", "button", "reset", "hidden"].indexOf(type) < 0;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    if (event.key.length !== 1) {
      return;
    }
    var selector = '[data-shortcut="' + event.key.toLowerCase() + '"]';
    var target = document.querySelector(selector);
    if (!target) {
      return;
    }
    event.preventDefault();
    var armed = document.querySelectorAll(".armed");
    for (var i = 0; i < armed.length; i++) {
      armed[i].classList.remove("armed");
    }
    if (target.type === "radio") {
      target.checked = true;
      target.focus();
      return;
    }
    target.classList.add("armed");
    target.focus();
  });
})();
