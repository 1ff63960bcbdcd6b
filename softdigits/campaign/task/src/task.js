/* The softdigits task page: consent, instructions, one practice trial, then the
 * participant's task list as exported (about 70 trials, 3 of them gold attention checks
 * the page cannot tell apart), a progress bar and an end page with the completion code.
 *
 * Identity: PROLIFIC_PID (with STUDY_ID, SESSION_ID) from the URL when a recruiting
 * platform sends the participant; otherwise the server generates an id, which the page
 * shows and keeps in localStorage so that a reload resumes the same list. Every answer is
 * sent to the server and the next trial appears only once the server has stored it.
 */
/* global initJsPsych, jsPsychHtmlButtonResponse, jsPsychInstructions, jsPsychPreload,
   jsPsychCallFunction, jsPsychDigitCategorisation */
(function () {
  "use strict";

  const STORE_KEY = "softdigits-participant-id";
  const RETRY_MS = [500, 1000, 2000, 4000, 8000];

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function post(path, body) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, "the server cannot be reached");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.error) || `the server answered ${response.status}`);
    }
    return data;
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function stopPage(html) {
    document.body.innerHTML = `<div class="sd-page sd-stop">${html}</div>`;
  }

  function endPageHtml(state) {
    const code = escapeHtml(state.completion_code);
    const link = state.completion_url
      ? `<p><a class="jspsych-btn sd-complete-link" href="${escapeHtml(state.completion_url)}">Return to the study platform</a></p>` +
        `<p class="sd-small">If the button does not work, enter the code above on the platform.</p>`
      : `<p class="sd-small">Give this code to the researcher.</p>`;
    return (
      `<div class="sd-page sd-end"><h1>Thank you!</h1><p>You have answered every image of your list; your answers are saved.</p>` +
      `<p>Your completion code:</p><p class="sd-code" id="sd-completion-code">${code}</p>${link}</div>`
    );
  }

  async function startSession() {
    const params = new URLSearchParams(window.location.search);
    const platform = {
      prolific_pid: params.get("PROLIFIC_PID"),
      study_id: params.get("STUDY_ID"),
      session_id: params.get("SESSION_ID"),
    };
    const body = {};
    for (const [key, value] of Object.entries(platform)) if (value) body[key] = value;
    if (!platform.prolific_pid) {
      const stored = window.localStorage.getItem(STORE_KEY);
      if (stored) body.participant_id = stored;
    }
    let state;
    try {
      state = await post("/api/session", body);
    } catch (err) {
      if (err.status === 404 && body.participant_id) {
        // an id from another campaign's database: start afresh
        window.localStorage.removeItem(STORE_KEY);
        delete body.participant_id;
        state = await post("/api/session", body);
      } else {
        throw err;
      }
    }
    if (state.id_source === "generated") window.localStorage.setItem(STORE_KEY, state.participant_id);
    return state;
  }

  async function main() {
    let state;
    try {
      state = await startSession();
    } catch (err) {
      stopPage(`<h1>The task cannot start</h1><p>${escapeHtml(err.message)}.</p><p>Please contact the researcher.</p>`);
      return;
    }
    if (state.finished) {
      stopPage(endPageHtml(state).replace('<div class="sd-page sd-end">', "<div>"));
      return;
    }
    const consentHtml = await (await fetch("/static/consent.html", { cache: "no-store" })).text();
    const jsPsych = initJsPsych({
      show_progress_bar: true,
      auto_update_progress_bar: false,
      message_progress_bar: "Your progress",
    });
    const queue = []; // trials still to answer, in list order
    let total = 0;
    const idLine =
      state.id_source === "generated"
        ? `<p class="sd-id">Your participant id: <b id="sd-participant-id">${escapeHtml(state.participant_id)}</b>. ` +
          "Note it down: with it the researcher can find your answers.</p>"
        : "";

    function setProgress(answered) {
      jsPsych.progressBar.progress = total ? Math.min(1, answered / total) : 0;
    }

    async function save(trial, responses, rt, say) {
      const body = {
        participant_id: state.participant_id,
        task_id: state.task_id,
        trial: trial.trial,
        responses,
        reaction_time_ms: rt,
      };
      for (let attempt = 0; ; attempt++) {
        try {
          const reply = await post("/api/answer", body);
          state = { ...state, ...reply };
          setProgress(reply.answered.length);
          return reply;
        } catch (err) {
          if (err.status === 0 || err.status >= 500) {
            const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
            say(`Saving failed (${err.message}); trying again in ${Math.round(wait / 1000) || 1} s\u2026`);
            await new Promise((resolve) => setTimeout(resolve, wait));
            continue;
          }
          if (err.status === 409) {
            // the server already holds another answer to this trial (e.g. from a second tab): keep going
            return { conflict: true, answered: state.answered };
          }
          jsPsych.abortExperiment(
            `<div class="sd-page sd-stop"><h1>Your answer was not accepted</h1><p>${escapeHtml(err.message)}.</p>` +
              "<p>Please contact the researcher.</p></div>",
          );
          return null;
        }
      }
    }

    const consent = {
      type: jsPsychHtmlButtonResponse,
      stimulus: `<div class="sd-page sd-consent">${consentHtml}${idLine}</div>`,
      choices: ["I agree", "I do not agree"],
      data: { stage: "consent" },
      on_finish: (data) => {
        if (data.response !== 0) {
          jsPsych.abortExperiment(
            '<div class="sd-page sd-stop"><h1>You did not consent</h1><p>Nothing was recorded. ' +
              "You can close this page (on a recruiting platform: return the study).</p></div>",
          );
        }
      },
    };

    const begin = {
      type: jsPsychCallFunction,
      async: true,
      func: (done) => {
        post("/api/start", { participant_id: state.participant_id })
          .then((reply) => {
            state = reply;
            const answered = new Set(reply.answered);
            total = reply.n_trials;
            queue.push(...reply.trials.filter((t) => !answered.has(t.trial)));
            setProgress(reply.answered.length);
            done({ task_id: reply.task_id, resumed_at: reply.answered.length });
          })
          .catch((err) => {
            jsPsych.abortExperiment(
              `<div class="sd-page sd-stop"><h1>No task for you right now</h1><p>${escapeHtml(err.message)}.</p></div>`,
            ); // ends this trial too
          });
      },
    };

    const isNew = () => state.answered.length === 0;
    const instructions = {
      type: jsPsychInstructions,
      show_clickable_nav: true,
      button_label_next: "Next",
      button_label_previous: "Back",
      pages: () => [
        '<div class="sd-page"><h1>What you will do</h1>' +
          `<p>You will see <b>${total}</b> images, one at a time. Each may show a handwritten digit, ` +
          "something between two digits, or no digit at all.</p>" +
          "<p>For <b>each</b> of the ten digits 0&ndash;9 you answer whether the image could be that digit:</p>" +
          "<ul><li><b>Yes</b>: it could be this digit,</li><li><b>No</b>: it is not this digit,</li>" +
          "<li><b>Unsure</b>: you cannot tell.</li></ul>" +
          "<p>More than one Yes is fine when an image could be several digits. " +
          "If the image shows <b>no digit at all</b>, answer <b>No</b> for every digit.</p></div>",
        '<div class="sd-page"><h1>Before you start</h1>' +
          "<p>Answer every digit, then press <b>Continue</b>. Go at your own pace; we record how long each image takes.</p>" +
          "<p>A few images are clear digits that check attention.</p>" +
          "<p>Your answers are saved one image at a time: if the page closes, open the same link again to continue where you stopped.</p>" +
          "<p>First, one practice image (not saved).</p></div>",
      ],
    };
    const welcomeBack = {
      type: jsPsychHtmlButtonResponse,
      stimulus: () =>
        `<div class="sd-page"><h1>Welcome back</h1><p>You have answered ${state.answered.length} of ${total} images; ` +
        "the task continues where you stopped.</p></div>",
      choices: ["Continue"],
    };
    const preloadPractice = {
      type: jsPsychPreload,
      images: () => [state.practice.image_url],
      show_progress_bar: false,
    };
    const practice = {
      timeline: [
        {
          type: jsPsychDigitCategorisation,
          heading: "Practice",
          image_url: () => state.practice.image_url,
        },
        {
          type: jsPsychHtmlButtonResponse,
          stimulus: () =>
            `<div class="sd-page"><h1>Practice done</h1><p>The practice image was a <b>${state.practice.digit}</b>: ` +
            `most people answer Yes for ${state.practice.digit} and No for the other digits. ` +
            "Where an image is less clear, answer as you see it: Unsure or several Yes answers are fine.</p>" +
            "<p>Now the real task begins.</p></div>",
          choices: ["Start"],
        },
      ],
      conditional_function: isNew,
    };
    const preloadTrials = {
      type: jsPsychPreload,
      images: () => queue.map((t) => t.image_url),
      message: "Loading the images\u2026",
    };
    const trialLoop = {
      timeline: [
        {
          type: jsPsychDigitCategorisation,
          image_url: () => queue[0].image_url,
          trial_number: () => queue[0].trial,
          // a FUNCTION parameter: jsPsych passes it as it is; queue[0] is this trial until on_finish
          save: (responses, rt, say) => save(queue[0], responses, rt, say),
          on_finish: () => {
            queue.shift();
          },
        },
      ],
      conditional_function: () => queue.length > 0,
      loop_function: () => queue.length > 0,
    };
    const end = {
      type: jsPsychHtmlButtonResponse,
      stimulus: () => (state.finished ? endPageHtml(state) : "<p>Your list is not complete; please reload the page.</p>"),
      choices: [],
      on_start: () => setProgress(total),
    };

    // conditional_function applies to timeline nodes (not to single trials): hence the wrappers
    const timeline = [];
    if (!state.consented) timeline.push(consent);
    timeline.push(
      begin,
      { timeline: [instructions, preloadPractice], conditional_function: isNew },
      { timeline: [welcomeBack], conditional_function: () => !isNew() },
      practice,
      preloadTrials,
      trialLoop,
      end,
    );
    await jsPsych.run(timeline);
  }

  main();
})();
