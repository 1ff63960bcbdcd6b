/* The trial of the softdigits task: one digit image and, for each class 0-9, Yes / No /
 * Unsure (the paper's multi-class categorisation; all No means "not a digit").
 *
 * The image is shown enlarged with pixelated rendering. Every digit needs an answer
 * before Continue is accepted. The reaction time runs from the moment the image is on
 * screen to the accepted Continue click (ms). With a `save` function the trial ends only
 * when the server has acknowledged the answer: network errors are retried, a refusal
 * ends the task with its message (the caller decides).
 *
 * Data: responses (ten strings, digit order), rt (ms), trial_number, practice.
 */
/* global jsPsychModule */
var jsPsychDigitCategorisation = (function (jspsych) {
  "use strict";

  const CHOICES = [
    ["yes", "Yes"],
    ["no", "No"],
    ["unsure", "Unsure"],
  ];
  const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

  const info = {
    name: "digit-categorisation",
    version: "1.0.0",
    parameters: {
      /** URL of the 28 x 28 PNG. */
      image_url: { type: jspsych.ParameterType.IMAGE, default: undefined },
      /** Screen pixels per image pixel. */
      scale: { type: jspsych.ParameterType.INT, default: 10 },
      /** Trial number in the participant's list (null for the practice). */
      trial_number: { type: jspsych.ParameterType.INT, default: null },
      /** A heading above the trial (e.g. "Practice"). */
      heading: { type: jspsych.ParameterType.HTML_STRING, default: "" },
      /** async (responses, rt_ms) => server reply; null: nothing is saved (the practice). */
      save: { type: jspsych.ParameterType.FUNCTION, default: null },
    },
    data: {
      responses: { type: jspsych.ParameterType.STRING, array: true },
      rt: { type: jspsych.ParameterType.INT },
      trial_number: { type: jspsych.ParameterType.INT },
      practice: { type: jspsych.ParameterType.BOOL },
      reply: { type: jspsych.ParameterType.OBJECT },
    },
  };

  function gridHtml() {
    const rows = DIGITS.map((d) => {
      const cells = CHOICES.map(
        ([value, label]) =>
          `<td><label class="sd-choice sd-${value}" data-digit="${d}" data-value="${value}">` +
          `<input type="radio" name="digit-${d}" value="${value}" aria-label="${d}: ${label}">` +
          `<span>${label}</span></label></td>`,
      ).join("");
      return `<tr data-digit="${d}"><th scope="row" class="sd-digit">${d}</th>${cells}</tr>`;
    }).join("");
    return `<table class="sd-grid"><tbody>${rows}</tbody></table>`;
  }

  class DigitCategorisationPlugin {
    constructor(jsPsych) {
      this.jsPsych = jsPsych;
    }

    trial(display_element, trial) {
      const side = 28 * trial.scale;
      display_element.innerHTML =
        `<div class="sd-trial">` +
        (trial.heading ? `<h2 class="sd-heading">${trial.heading}</h2>` : "") +
        `<div class="sd-body">` +
        `<div class="sd-image"><img id="sd-stimulus" alt="the image to categorise" width="${side}" height="${side}"></div>` +
        `<form class="sd-form" novalidate>` +
        `<p class="sd-question">For <b>each</b> digit, could this image be that digit?</p>` +
        gridHtml() +
        `<p class="sd-note">If the image shows no digit at all, answer <b>No</b> for every digit.</p>` +
        `<p class="sd-message" role="alert" aria-live="assertive"></p>` +
        `<button type="submit" class="jspsych-btn sd-continue">Continue</button>` +
        `</form></div></div>`;
      const img = display_element.querySelector("#sd-stimulus");
      const form = display_element.querySelector(".sd-form");
      const message = display_element.querySelector(".sd-message");
      const button = display_element.querySelector(".sd-continue");
      let shownAt = null;
      let busy = false;

      form.addEventListener("change", (event) => {
        const row = event.target.closest("tr");
        if (row) row.classList.remove("sd-missing");
        if (!form.querySelector("tr.sd-missing")) message.textContent = "";
      });

      const onShown = () => {
        // the first frame in which the image is painted
        requestAnimationFrame(() => {
          shownAt = performance.now();
        });
      };
      img.addEventListener("load", onShown, { once: true });
      img.src = trial.image_url;
      if (img.complete && img.naturalWidth > 0) onShown();

      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (busy || shownAt === null) return;
        const submittedAt = performance.now();
        const responses = DIGITS.map((d) => {
          const checked = form.querySelector(`input[name="digit-${d}"]:checked`);
          return checked ? checked.value : null;
        });
        const missing = DIGITS.filter((d) => responses[d] === null);
        for (const d of DIGITS) {
          form.querySelector(`tr[data-digit="${d}"]`).classList.toggle("sd-missing", responses[d] === null);
        }
        if (missing.length) {
          message.textContent = `Please answer every digit (still open: ${missing.join(", ")}).`;
          return;
        }
        const rt = Math.round(submittedAt - shownAt);
        busy = true;
        button.disabled = true;
        for (const input of form.querySelectorAll("input")) input.disabled = true;
        let reply = null;
        if (trial.save) {
          message.textContent = "Saving\u2026";
          reply = await trial.save(responses, rt, (text) => {
            message.textContent = text;
          });
          if (reply === null) return; // the caller ended the task
        }
        this.jsPsych.finishTrial({
          responses,
          rt,
          trial_number: trial.trial_number,
          practice: !trial.save,
          reply,
        });
      });
    }
  }
  DigitCategorisationPlugin.info = info;
  return DigitCategorisationPlugin;
})(jsPsychModule);
