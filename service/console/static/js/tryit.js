// "Try it": send a request to a model from the page. Image models with a [-1, 1, 28, 28] FP32
// input get the digit pad; every model gets the tensor entry (JSON typed or pasted, or a .npy
// file). Each request can be copied as curl and as tritonclient; server errors are shown in the
// server's own words.

import { ApiError } from "./api.js";
import { DigitPad, SIZE } from "./digit.js";
import { formatNumber, formatShape, h, uid } from "./dom.js";
import { NpyError, readNpy } from "./npy.js";
import { curlSnippet, tritonclientSnippet } from "./snippets.js";
import { TensorTextError, parseTensorText } from "./tensor.js";

const TOP_K = 3;
const SHOWN_VALUES = 64;
const SNIPPET_LIMIT = 1 << 20; // characters: a larger request is not written out as a command

function isDigitInput(spec) {
  const [batch, ...rest] = spec.shape;
  return spec.datatype === "FP32" && (batch === -1 || batch === 1) && rest.join(",") === "1,28,28";
}

// "score:index:label" (Triton's classification strings) → {score, index, label}.
function parseClass(text) {
  const [score, index, ...label] = String(text).split(":");
  return { score, index: Number(index), label: label.length ? label.join(":") : index };
}

function topClasses(output) {
  return output.data.map(parseClass);
}

function classList(classes) {
  return h("ol", { class: "classes" }, classes.map((c, i) => h("li", { class: i === 0 ? "best" : null },
    h("span", { class: "class-label" }, c.label),
    h("span", { class: "class-score" }, `score ${c.score}`))));
}

function errorBox(error) {
  let status = "No answer"; // the request went out but nothing came back (network, server gone)
  if (error instanceof ApiError) status = `HTTP ${error.status}`;
  else if (error instanceof TensorTextError || error instanceof NpyError) status = "Not sent";
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, status), " ", h("span", { class: "server-message" }, error.message));
}

function tensorPreview(output) {
  const values = output.data.slice(0, SHOWN_VALUES).map((v) => (typeof v === "number" ? formatNumber(v, 6) : JSON.stringify(v)));
  const more = output.data.length > SHOWN_VALUES ? ` … (${output.data.length - SHOWN_VALUES} more)` : "";
  return h("div", { class: "output" },
    h("div", { class: "output-head" }, h("code", {}, output.name), ` ${output.datatype} ${formatShape(output.shape)}`),
    h("pre", { class: "values" }, `[${values.join(", ")}${more}]`));
}

async function copyText(text, pre) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http to a remote host is not a secure context: select the text and copy that.
  const range = document.createRange();
  range.selectNodeContents(pre);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  document.execCommand("copy");
}

function snippetBlock(title, className) {
  const pre = h("pre", { class: `snippet ${className}`, tabindex: "0", "aria-label": title });
  const note = h("span", { class: "copy-note", role: "status", "aria-live": "polite" });
  const button = h("button", {
    type: "button",
    class: "secondary",
    onclick: async () => {
      try {
        await copyText(pre.textContent, pre);
        note.textContent = "Copied";
      } catch (error) {
        note.textContent = `Could not copy: ${error.message}; select the text instead`;
      }
      setTimeout(() => { note.textContent = ""; }, 3000);
    },
  }, `Copy ${title}`);
  return { element: h("div", { class: "snippet-block" }, h("div", { class: "snippet-head" }, h("h4", {}, title), button, note), pre), pre };
}

export class TryIt {
  constructor(api, model, hasApiKeys) {
    this.api = api;
    this.model = model;
    this.hasApiKeys = hasApiKeys;
    this.texts = new Map(); // input name → typed text, kept across version changes
    this.files = new Map(); // input name → tensor read from a .npy file
    this.tensorOpen = null; // the tensor form's <details>, once the user opened or folded it
    this.versionSelect = h("select", { id: uid("version"), onchange: () => this.#layout() });
    this.body = h("div", { class: "tryit-body" });
    this.reproduce = this.#reproduceSection();
    this.element = h("section", { class: "panel tryit", "aria-labelledby": "try-title" },
      h("h2", { id: "try-title" }, "Try it"),
      h("div", { class: "field inline" },
        h("label", { for: this.versionSelect.id }, "Version"), this.versionSelect),
      this.body, this.reproduce.element);
    this.update(model);
    this.#layout();
  }

  // A new state of the model (every scrape): keeps the version list current.
  update(model) {
    this.model = model;
    const served = model.versions.filter((v) => v.served).map((v) => String(v.version));
    const options = ["", ...served];
    const labels = options.map((v) => (v === "" ? `Default (v${model.default_version})` : `v${v}`));
    const current = [...this.versionSelect.options].map((o) => o.textContent);
    if (labels.join(",") === current.join(",")) return;
    const chosen = this.versionSelect.value;
    this.versionSelect.replaceChildren(...options.map((value, i) => h("option", { value }, labels[i])));
    this.versionSelect.value = options.includes(chosen) ? chosen : "";
    if (chosen !== this.versionSelect.value) this.#layout();
  }

  #version() {
    const chosen = this.versionSelect.value;
    const number = chosen === "" ? this.model.default_version : Number(chosen);
    return this.model.versions.find((v) => v.version === number && v.served) || null;
  }

  #layout() {
    const version = this.#version();
    if (!version) {
      this.body.replaceChildren(h("p", { class: "muted" }, "No version of this model is serving: nothing to try."));
      return;
    }
    this.signature = version;
    const required = version.inputs.filter((i) => !version.optional_inputs.includes(i.name));
    const digit = required.length === 1 && isDigitInput(required[0]) ? required[0] : null;
    this.body.replaceChildren(
      digit ? this.#digitSection(version, digit) : null,
      this.#tensorSection(version, digit !== null));
  }

  #target() {
    const chosen = this.versionSelect.value;
    const path = chosen === ""
      ? `../v2/models/${this.model.name}/infer`
      : `../v2/models/${this.model.name}/versions/${chosen}/infer`;
    return { url: this.api.url(path), path, model: this.model.name, version: chosen || null, apiKey: this.hasApiKeys };
  }

  #classifiedOutputs(version) {
    return version.outputs.filter((o) => version.labels[o.name]);
  }

  // ---- the digit pad -----------------------------------------------------------------------

  #digitSection(version, input) {
    const canvas = h("canvas", {
      width: SIZE, height: SIZE, class: "pad",
      "aria-label": "Drawing area: draw a digit with a mouse, pen or finger; it is sent when you "
        + "lift it. Without a pointer, send a tensor with the form below.",
    });
    const preview = h("canvas", { width: 28, height: 28, class: "preview", role: "img", "aria-label": "The drawing as the model sees it, 28 by 28 pixels" });
    const result = h("div", { class: "prediction", role: "status", "aria-live": "polite" },
      h("p", { class: "muted" }, "Draw a digit in the box."));
    const labelled = this.#classifiedOutputs(version);
    let strokes = 0; // an answer to an older drawing arriving late is not shown
    const pad = new DigitPad(canvas, preview, async (data) => {
      strokes += 1;
      const stroke = strokes;
      const request = {
        inputs: [{ name: input.name, shape: [1, 1, 28, 28], datatype: "FP32", data }],
      };
      if (labelled.length) {
        request.outputs = labelled.map((o) => ({ name: o.name, parameters: { classification: TOP_K } }));
      }
      result.replaceChildren(h("p", { class: "muted" }, "Reading…"));
      const answer = await this.#send(request);
      if (stroke !== strokes) return;
      if (answer.error) {
        result.replaceChildren(errorBox(answer.error));
        return;
      }
      const outputs = answer.doc.outputs;
      result.replaceChildren(
        h("p", { class: "answer-head" }, `v${answer.doc.model_version} answered in ${formatNumber(answer.millis)} ms`),
        ...outputs.map((o) => (labelled.some((l) => l.name === o.name) ? classList(topClasses(o)) : tensorPreview(o))));
    });
    const clear = h("button", {
      type: "button", class: "secondary",
      onclick: () => {
        pad.clear();
        result.replaceChildren(h("p", { class: "muted" }, "Draw a digit in the box."));
      },
    }, "Clear");
    return h("div", { class: "digit" },
      h("div", { class: "pad-frame" }, canvas, h("div", { class: "pad-guide", "aria-hidden": "true" })),
      h("div", { class: "digit-side" },
        h("h3", {}, "Draw a digit"),
        h("p", { class: "muted" }, "White on black, scaled to 28 × 28 exactly as training saw its digits. Draw inside the dashed square."),
        h("figure", { class: "preview-figure" }, preview, h("figcaption", {}, "What the model sees")),
        clear,
        h("h3", {}, labelled.length ? `Top ${TOP_K}` : "Answer"),
        result));
  }

  // ---- the tensor entry --------------------------------------------------------------------

  #tensorSection(version, collapsed) {
    const fields = version.inputs.map((spec) => this.#inputField(spec, version.optional_inputs.includes(spec.name)));
    const labelled = this.#classifiedOutputs(version);
    const classify = labelled.length
      ? h("input", { type: "checkbox", id: uid("classify"), checked: true })
      : null;
    this.result = h("div", { class: "result", role: "status", "aria-live": "polite" });
    const send = h("button", { type: "submit", class: "primary" }, "Send request");
    const form = h("form", {
      class: "tensor-form",
      onsubmit: (event) => {
        event.preventDefault();
        this.#sendTensors(version, classify && classify.checked, fields);
      },
    }, fields.map((f) => f.element),
    classify ? h("div", { class: "field check" }, classify,
      h("label", { for: classify.id }, `Return the top ${TOP_K} classes of ${labelled.map((o) => o.name).join(", ")} (classification extension)`)) : null,
    send);
    // Open or folded as the user left it, when a version change rebuilds the form.
    const details = h("details", {
      class: "tensor-entry",
      open: this.tensorOpen ?? !collapsed,
      ontoggle: () => { this.tensorOpen = details.open; },
    }, h("summary", {}, "Send a tensor (JSON, or a .npy file)"), form, this.result);
    return details;
  }

  #inputField(spec, optional) {
    const id = uid(`input-${spec.name}`);
    const hint = uid("hint");
    const area = h("textarea", {
      id, rows: 4, spellcheck: "false", "aria-describedby": hint,
      placeholder: optional ? "Leave empty: the server fills it" : '[[0.1, 0.2, …]] or {"shape": [1, …], "data": [...]}',
      oninput: () => this.texts.set(spec.name, area.value),
    });
    area.value = this.texts.get(spec.name) || "";
    const note = h("span", { class: "file-note" });
    const fileInput = h("input", { type: "file", accept: ".npy", id: uid("npy") });
    const showFile = () => {
      const loaded = this.files.get(spec.name);
      note.replaceChildren();
      area.disabled = Boolean(loaded);
      if (!loaded) return;
      note.append(`${loaded.file}: ${loaded.datatype} ${formatShape(loaded.shape)}, sent as ${spec.datatype} `,
        h("button", { type: "button", class: "link", onclick: () => { this.files.delete(spec.name); fileInput.value = ""; showFile(); } }, "remove"));
    };
    fileInput.addEventListener("change", async () => {
      const file = fileInput.files[0];
      if (!file) return;
      try {
        this.files.set(spec.name, { file: file.name, ...readNpy(await file.arrayBuffer()) });
      } catch (error) {
        note.replaceChildren(h("span", { class: "error-text" }, `${file.name}: ${error instanceof NpyError ? error.message : error}`));
        return;
      }
      showFile();
    });
    showFile();
    const element = h("div", { class: "field" },
      h("label", { for: id }, h("code", {}, spec.name), " ",
        h("span", { class: "muted" }, `${spec.datatype} ${formatShape(spec.shape)}`),
        optional ? h("span", { class: "tag" }, "optional") : null),
      area,
      h("div", { class: "field-foot" },
        h("span", { id: hint, class: "muted" }, optional ? "The server computes this input when it is left empty." : "JSON: a nested list, or an object with shape and data."),
        h("label", { class: "file", for: fileInput.id }, "Load .npy"), fileInput, note));
    return { element, spec, optional, area };
  }

  async #sendTensors(version, classify, fields) {
    const inputs = [];
    try {
      for (const field of fields) {
        const loaded = this.files.get(field.spec.name);
        const text = field.area.value.trim();
        if (!loaded && text === "" && field.optional) continue;
        if (!loaded && text === "") throw new TensorTextError(`${field.spec.name}: enter a tensor or load a .npy file`);
        const { shape, data } = loaded || parseTensorText(text, field.spec);
        inputs.push({ name: field.spec.name, shape, datatype: field.spec.datatype, data });
      }
    } catch (error) {
      this.result.replaceChildren(errorBox(error));
      return;
    }
    const request = { inputs };
    if (classify) {
      request.outputs = version.outputs.map((o) => (version.labels[o.name]
        ? { name: o.name, parameters: { classification: TOP_K } } : { name: o.name }));
    }
    this.result.replaceChildren(h("p", { class: "muted" }, "Sending…"));
    const answer = await this.#send(request);
    if (answer.error) {
      this.result.replaceChildren(errorBox(answer.error));
      return;
    }
    const classified = new Set((request.outputs || []).filter((o) => o.parameters).map((o) => o.name));
    this.result.replaceChildren(
      h("p", { class: "answer-head" }, `HTTP 200 · v${answer.doc.model_version} · ${formatNumber(answer.millis)} ms`),
      ...answer.doc.outputs.map((o) => (classified.has(o.name)
        ? h("div", { class: "output" }, h("div", { class: "output-head" }, h("code", {}, o.name), " top classes"), classList(topClasses(o)))
        : tensorPreview(o))));
  }

  // ---- sending and reproducing -------------------------------------------------------------

  async #send(request) {
    const target = this.#target();
    const body = JSON.stringify(request);
    this.#showSnippets(target, request, body.length);
    try {
      return await this.api.post(target.path, body);
    } catch (error) {
      return { error };
    }
  }

  #reproduceSection() {
    const curl = snippetBlock("curl", "curl");
    const triton = snippetBlock("tritonclient", "tritonclient");
    const note = h("p", { class: "muted" });
    const element = h("section", { class: "reproduce", hidden: true, "aria-labelledby": "reproduce-title" },
      h("h3", { id: "reproduce-title" }, "Reproduce this request"), note, curl.element, triton.element);
    return { element, note, curl: curl.pre, triton: triton.pre };
  }

  #showSnippets(target, request, size) {
    this.reproduce.element.hidden = false;
    if (size > SNIPPET_LIMIT) {
      this.reproduce.note.textContent = `This request is ${formatNumber(size / 1e6)} MB of JSON, too large to write out as a command.`;
      this.reproduce.curl.textContent = "";
      this.reproduce.triton.textContent = "";
      return;
    }
    this.reproduce.note.textContent = this.hasApiKeys
      ? "Both read the API key from the INDUCTIVE_API_KEY environment variable."
      : "";
    const outputNames = this.signature.outputs.map((o) => o.name);
    this.reproduce.curl.textContent = curlSnippet(target, request);
    this.reproduce.triton.textContent = tritonclientSnippet(target, request, outputNames);
  }
}
