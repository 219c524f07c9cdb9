// The digit pad: draw with a mouse, pen or finger; the drawing becomes the model's input.
//
// The drawing surface is SIZE × SIZE = 280 × 280 canvas pixels, SCALE = 10 per model pixel.
// Ink is white on black, as in MNIST and in training (training/data.py: pixel values / 255,
// white digit on black, shape (N, 1, 28, 28); the model standardises inside its graph).
//
// A stroke is the polyline through the pointer positions, in canvas pixels. Canvas pixel
// (column i, row j) is inked when its centre (i + 0.5, j + 0.5) lies within BRUSH_RADIUS of a
// segment of a stroke: a hard-edged round brush, no antialiasing, so a stroke gives the same
// pixels in every browser, and anyone can recompute them.
//
// Down-scaling: model pixel (row r, column c) = the number of inked canvas pixels in the 10 × 10
// block of rows 10r … 10r + 9 and columns 10c … 10c + 9, divided by 100. A value in [0, 1], like a
// training pixel; the tensor is [1, 1, 28, 28], row-major.
//
// MNIST digits fill about the centre 20 × 20 of their 28 × 28 frame; the dashed square shows
// that area, and drawing inside it reads best.

export const SIZE = 280;
export const SCALE = 10;
export const BRUSH_RADIUS = 10;
const SIDE = SIZE / SCALE; // 28

export class DigitPad {
  // onStroke: called with the [1, 1, 28, 28] tensor (flat array) when a stroke ends.
  constructor(canvas, preview, onStroke) {
    this.canvas = canvas;
    this.preview = preview;
    this.onStroke = onStroke;
    this.ink = new Uint8Array(SIZE * SIZE);
    this.last = null;
    this.context = canvas.getContext("2d");
    this.previewContext = preview.getContext("2d");
    canvas.addEventListener("pointerdown", (e) => this.#down(e));
    canvas.addEventListener("pointermove", (e) => this.#move(e));
    canvas.addEventListener("pointerup", (e) => this.#up(e));
    canvas.addEventListener("pointercancel", (e) => this.#up(e));
    this.clear();
  }

  clear() {
    this.ink.fill(0);
    this.context.fillStyle = "#000";
    this.context.fillRect(0, 0, SIZE, SIZE);
    this.#drawPreview();
  }

  get empty() {
    return !this.ink.includes(1);
  }

  // The model input the drawing stands for: 784 values, row-major.
  tensor() {
    const out = new Array(SIDE * SIDE).fill(0);
    for (let j = 0; j < SIZE; j += 1) {
      for (let i = 0; i < SIZE; i += 1) {
        if (this.ink[j * SIZE + i]) out[Math.floor(j / SCALE) * SIDE + Math.floor(i / SCALE)] += 1;
      }
    }
    return out.map((count) => count / (SCALE * SCALE));
  }

  #point(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [
      (event.clientX - rect.left) * (SIZE / rect.width),
      (event.clientY - rect.top) * (SIZE / rect.height),
    ];
  }

  #down(event) {
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this.last = this.#point(event);
    this.#segment(this.last, this.last);
  }

  #move(event) {
    if (this.last === null) return;
    // Every position the pointer went through, also those the browser merged into one event.
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) {
      const point = this.#point(e);
      this.#segment(this.last, point);
      this.last = point;
    }
  }

  #up(event) {
    if (this.last === null) return;
    this.#move(event);
    this.last = null;
    this.#drawPreview();
    this.onStroke(this.tensor());
  }

  // Inks every pixel whose centre is within BRUSH_RADIUS of the segment a → b.
  #segment([ax, ay], [bx, by]) {
    const r = BRUSH_RADIUS;
    const x0 = Math.max(0, Math.floor(Math.min(ax, bx) - r));
    const x1 = Math.min(SIZE - 1, Math.ceil(Math.max(ax, bx) + r));
    const y0 = Math.max(0, Math.floor(Math.min(ay, by) - r));
    const y1 = Math.min(SIZE - 1, Math.ceil(Math.max(ay, by) + r));
    if (x0 > x1 || y0 > y1) return;
    const dx = bx - ax;
    const dy = by - ay;
    const length2 = dx * dx + dy * dy;
    for (let j = y0; j <= y1; j += 1) {
      for (let i = x0; i <= x1; i += 1) {
        const px = i + 0.5;
        const py = j + 0.5;
        let t = length2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / length2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const qx = ax + t * dx - px;
        const qy = ay + t * dy - py;
        if (qx * qx + qy * qy <= r * r) this.ink[j * SIZE + i] = 1;
      }
    }
    this.#drawInk(x0, y0, x1 - x0 + 1, y1 - y0 + 1);
  }

  #drawInk(x, y, width, height) {
    const image = this.context.createImageData(width, height);
    for (let j = 0; j < height; j += 1) {
      for (let i = 0; i < width; i += 1) {
        const value = this.ink[(y + j) * SIZE + x + i] ? 255 : 0;
        const at = (j * width + i) * 4;
        image.data[at] = value;
        image.data[at + 1] = value;
        image.data[at + 2] = value;
        image.data[at + 3] = 255;
      }
    }
    this.context.putImageData(image, x, y);
  }

  // What the model sees, 28 × 28, grey levels.
  #drawPreview() {
    const values = this.tensor();
    const image = this.previewContext.createImageData(SIDE, SIDE);
    values.forEach((v, k) => {
      const level = Math.round(v * 255);
      image.data.set([level, level, level, 255], k * 4);
    });
    this.previewContext.putImageData(image, 0, 0);
  }
}
