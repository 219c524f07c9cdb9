// The request the page sent, as a curl command and as a tritonclient script that send the same
// tensors and ask for the same outputs. An API key is never written into them: they read it
// from the INDUCTIVE_API_KEY environment variable.

const NUMPY_DTYPES = {
  BOOL: "np.bool_", UINT8: "np.uint8", UINT16: "np.uint16", UINT32: "np.uint32",
  UINT64: "np.uint64", INT8: "np.int8", INT16: "np.int16", INT32: "np.int32", INT64: "np.int64",
  FP16: "np.float16", FP32: "np.float32", FP64: "np.float64", BYTES: "np.object_",
};

function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

// A JSON value as a Python literal (JSON's numbers, strings and lists already are, but for
// true/false/null).
function python(value) {
  if (value === true) return "True";
  if (value === false) return "False";
  if (value === null) return "None";
  if (Array.isArray(value)) return `[${value.map(python).join(", ")}]`;
  if (typeof value === "number" && !Number.isFinite(value)) {
    return Number.isNaN(value) ? 'float("nan")' : `float("${value > 0 ? "" : "-"}inf")`;
  }
  return JSON.stringify(value);
}

function identifier(name, index) {
  const cleaned = name.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[A-Za-z_]/.test(cleaned) ? cleaned.toLowerCase() : `input_${index}`;
}

// target: {url (the infer URL), model, version (string or null), apiKey (bool)};
// request: the JSON body sent.
export function curlSnippet(target, request) {
  const lines = [
    `curl -sS -X POST ${shellQuote(target.url)}`,
    "  -H 'Content-Type: application/json'",
  ];
  if (target.apiKey) lines.push('  -H "Authorization: Bearer $INDUCTIVE_API_KEY"');
  lines.push("  --data-binary @- <<'JSON'");
  return `${lines.join(" \\\n")}\n${JSON.stringify(request)}\nJSON\n`;
}

export function tritonclientSnippet(target, request, outputNames) {
  const url = new URL(target.url);
  const lines = [];
  if (target.apiKey) lines.push("import os");
  lines.push("import numpy as np", "import tritonclient.http as httpclient", "");
  const ssl = url.protocol === "https:" ? ", ssl=True" : "";
  lines.push(`client = httpclient.InferenceServerClient(${JSON.stringify(url.host)}${ssl})`);
  const names = [];
  request.inputs.forEach((input, i) => {
    const variable = identifier(input.name, i);
    names.push(variable);
    lines.push(
      `${variable} = np.array(${python(input.data)}, dtype=${NUMPY_DTYPES[input.datatype]})`
      + `.reshape(${python(input.shape)})`);
  });
  lines.push("inputs = [");
  request.inputs.forEach((input, i) => {
    lines.push(`    httpclient.InferInput(${JSON.stringify(input.name)}, ${python(input.shape)}, `
      + `${JSON.stringify(input.datatype)}),`);
    names[i] = [names[i], i];
  });
  lines.push("]");
  for (const [variable, i] of names) lines.push(`inputs[${i}].set_data_from_numpy(${variable})`);
  const asked = request.outputs || outputNames.map((name) => ({ name }));
  lines.push("outputs = [");
  for (const output of asked) {
    const k = output.parameters && output.parameters.classification;
    lines.push(`    httpclient.InferRequestedOutput(${JSON.stringify(output.name)}`
      + `${k ? `, class_count=${k}` : ""}),`);
  }
  lines.push("]");
  const args = [JSON.stringify(target.model), "inputs"];
  if (target.version !== null) args.push(`model_version=${JSON.stringify(target.version)}`);
  args.push("outputs=outputs");
  if (target.apiKey) {
    args.push('headers={"Authorization": "Bearer " + os.environ["INDUCTIVE_API_KEY"]}');
  }
  lines.push(`result = client.infer(${args.join(", ")})`);
  for (const output of asked) {
    lines.push(`print(${JSON.stringify(output.name)}, result.as_numpy(${JSON.stringify(output.name)}))`);
  }
  return `${lines.join("\n")}\n`;
}
