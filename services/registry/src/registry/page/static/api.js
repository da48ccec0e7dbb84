// The registry's own HTTP API, and nothing else. The token is held by the caller (memory / sessionStorage)
// and sent only in the Authorization header, never in a URL.

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.errors = Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  base(entity) {
    return `/api/managing-entity/${encodeURIComponent(entity)}/webhook`;
  }

  async request(method, path, { body, ifMatch, query } = {}) {
    const headers = { Accept: "application/json, application/problem+json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (ifMatch !== undefined) headers["If-Match"] = `"${ifMatch}"`;
    let url = path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
      const s = q.toString();
      if (s) url += `?${s}`;
    }
    let resp;
    try {
      resp = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, { detail: "The registry cannot be reached. Is it running?" });
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (err) {
        data = { detail: text.slice(0, 200) };
      }
    }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  // Wink's six operations and the signing secret.
  list(entity) { return this.request("GET", `${this.base(entity)}/list`); }
  events(entity) { return this.request("GET", `${this.base(entity)}/event/list`); }
  get(entity, id) { return this.request("GET", `${this.base(entity)}/${encodeURIComponent(id)}`); }
  create(entity, body) { return this.request("POST", this.base(entity), { body }); }
  update(entity, id, body, version) {
    return this.request("PATCH", `${this.base(entity)}/${encodeURIComponent(id)}`, { body, ifMatch: version });
  }
  remove(entity, id) { return this.request("DELETE", `${this.base(entity)}/${encodeURIComponent(id)}`); }
  secret(entity, id) { return this.request("GET", `${this.base(entity)}/${encodeURIComponent(id)}/secret`); }
  rotate(entity, id) {
    return this.request("POST", `${this.base(entity)}/${encodeURIComponent(id)}/secret/rotate`);
  }

  // The delivery history (may be absent on an older registry: callers check `features` first).
  one(entity, id) { return `${this.base(entity)}/${encodeURIComponent(id)}`; }
  deliveries(entity, id, query) { return this.request("GET", `${this.one(entity, id)}/delivery/list`, { query }); }
  delivery(entity, id, eventId) {
    return this.request("GET", `${this.one(entity, id)}/delivery/${encodeURIComponent(eventId)}`);
  }
  resend(entity, id, eventId) {
    return this.request("POST", `${this.one(entity, id)}/delivery/${encodeURIComponent(eventId)}/resend`);
  }
  sendTest(entity, id, eventType) {
    return this.request("POST", `${this.one(entity, id)}/test`, { body: eventType ? { eventType } : {} });
  }
  stats(entity, id) { return this.request("GET", `${this.one(entity, id)}/stats`); }
  recover(entity, id, window) { return this.request("POST", `${this.one(entity, id)}/recover`, { body: window }); }
  replay(entity, id, window) { return this.request("POST", `${this.one(entity, id)}/replay`, { body: window }); }
  job(entity, id, jobId) {
    return this.request("GET", `${this.one(entity, id)}/job/${encodeURIComponent(jobId)}`);
  }

  // Public: which operations this registry serves, and whether it mints development tokens.
  static async features() {
    const found = new Set();
    try {
      const doc = await new Api(null).request("GET", "/openapi.json");
      for (const [path, ops] of Object.entries(doc.paths || {})) {
        for (const method of Object.keys(ops)) found.add(`${method.toUpperCase()} ${path.replace(/^.*\/webhook/, "")}`);
      }
    } catch (err) {
      // Without the schema every history call is tried and a 404 says it is not there.
      return null;
    }
    return found;
  }

  static async devTokens() {
    try {
      const config = await new Api(null).request("GET", "/page/config.json");
      return Boolean(config && config.devTokens);
    } catch (err) {
      return false;
    }
  }

  static async mintDevToken(entity) {
    return new Api(null).request("POST", "/dev/token", { body: { entity } });
  }
}

// The claims of a JWT, read only to offer its entities (the registry verifies the token, not the page).
export function claimsOf(token) {
  try {
    const part = token.split(".")[1];
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(json);
  } catch (err) {
    return null;
  }
}
