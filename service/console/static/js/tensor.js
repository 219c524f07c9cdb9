// A tensor typed or pasted as JSON: a nested array ([[0.1, 0.2], [0.3, 0.4]]) whose nesting
// gives the shape, or {"shape": [...], "data": [...]} with data flat or nested. Only the JSON
// itself is checked here; whether the tensor fits the model is the server's to say, in its words.

export class TensorTextError extends Error {}

// A rectangular nested array → its shape (the lengths along each depth).
function shapeOf(value, path) {
  if (!Array.isArray(value)) return [];
  if (value.length === 0) return [0];
  const inner = shapeOf(value[0], `${path}[0]`);
  value.forEach((item, i) => {
    const other = shapeOf(item, `${path}[${i}]`);
    if (other.join(",") !== inner.join(",")) {
      throw new TensorTextError(
        `${path}[${i}] has shape [${other.join(", ")}] but ${path}[0] has [${inner.join(", ")}]: `
        + "rows must all be the same length");
    }
  });
  return [value.length, ...inner];
}

// spec: the model input ({name, datatype, shape}); returns {shape, data} with data flat.
export function parseTensorText(text, spec) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TensorTextError(`not valid JSON: ${error.message}`);
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    if (!Array.isArray(value.shape) || !("data" in value)) {
      throw new TensorTextError('an object needs "shape" (a list of sizes) and "data"');
    }
    const data = Array.isArray(value.data) ? value.data.flat(Infinity) : [value.data];
    return { shape: value.shape, data };
  }
  if (!Array.isArray(value)) value = [value];
  let shape = shapeOf(value, spec.name);
  // One sample without its batch axis: the batch of one it stands for.
  if (spec.shape.length === shape.length + 1 && spec.shape[0] === -1) shape = [1, ...shape];
  return { shape, data: value.flat(Infinity) };
}
