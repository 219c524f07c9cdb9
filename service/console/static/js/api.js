// Requests to this server (the page's own origin only), with the API key as a bearer token.
//
// The key lives in memory for the page's lifetime; it is written to localStorage only when the
// user ticks "remember", and "forget" removes it from both.

const STORAGE_KEY = "inductive.console.apiKey";

// An answer other than 2xx: `message` is the server's own words (its {"error": ...} field, or
// the body as text), so that the page can show it verbatim.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  get needsKey() {
    return this.status === 401 || this.status === 403;
  }
}

async function errorOf(response) {
  const text = await response.text();
  try {
    const doc = JSON.parse(text);
    if (doc && typeof doc.error === "string") return new ApiError(response.status, doc.error);
  } catch {
    // not JSON: the text is the message
  }
  return new ApiError(response.status, text || response.statusText);
}

export class Api {
  constructor() {
    this.key = this.#stored();
  }

  get remembered() {
    return this.#stored() !== null;
  }

  setKey(key, remember) {
    this.key = key || null;
    try {
      if (remember && this.key) localStorage.setItem(STORAGE_KEY, this.key);
      else localStorage.removeItem(STORAGE_KEY);
    } catch {
      // storage refused (private mode, policy): the key stays in memory only
    }
  }

  // An absolute URL for a path relative to the console (/console/): "../v2/models/cnn".
  url(path) {
    return new URL(path, document.baseURI).href;
  }

  headers(extra = {}) {
    return this.key ? { ...extra, Authorization: `Bearer ${this.key}` } : extra;
  }

  async json(path) {
    const response = await this.#fetch(path, {});
    return response.json();
  }

  async text(path) {
    const response = await this.#fetch(path, {});
    return response.text();
  }

  // POSTs a JSON body; resolves to {doc, millis} or rejects with ApiError.
  async post(path, body) {
    const started = performance.now();
    const response = await this.#fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
    });
    const doc = await response.json();
    return { doc, millis: performance.now() - started };
  }

  async #fetch(path, init) {
    const response = await fetch(this.url(path), {
      ...init,
      headers: this.headers(init.headers),
      cache: "no-store",
      credentials: "omit",
    });
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  #stored() {
    try {
      return localStorage.getItem(STORAGE_KEY);
    } catch {
      return null;
    }
  }
}
