// OAuth 2.0 for the WIC, a public client (RFC 6749 authorisation code grant
// with PKCE S256, RFC 7636): the pieces that talk to the WAF, kept free of
// the page so that they can be tested alone.
//
//   startLogin(config)            -> {url, pending}  pending = {verifier, state}
//   exchangeCode(config, code, verifier[, fetch])   -> TokenSet
//   refreshTokens(config, previous[, fetch])        -> TokenSet (rotated refresh token)
//   revokeToken(url, config, token, hint[, fetch])  -> true when the WAF said 200 (RFC 7009)
//
// A TokenSet holds what the token endpoint answered (access_token,
// refresh_token, expires_in, scope and, per TS 24.371 Annex A step 1, the IMS
// identities impi and impu) plus expires_at, the absolute expiry in ms.
// Failures throw an OAuthError carrying the RFC 6749 §5.2 error code.

export class OAuthError extends Error {
  constructor(code, description, status) {
    super(description ? `${code}: ${description}` : code);
    this.name = "OAuthError";
    this.code = code;
    this.status = status;
  }
}

// base64url without padding (RFC 7636 appendix A).
export function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// A code_verifier of 43 characters: 32 random octets, base64url-encoded.
export function makeVerifier() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

export function makeState() {
  return base64url(crypto.getRandomValues(new Uint8Array(16)));
}

// code_challenge = BASE64URL(SHA256(ASCII(code_verifier))).
export async function challengeS256(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

export async function startLogin(config) {
  const verifier = makeVerifier();
  const state = makeState();
  const url = new URL(config.authorize_url, globalThis.location?.href);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: config.redirect_uri,
    scope: config.scope,
    state,
    code_challenge: await challengeS256(verifier),
    code_challenge_method: "S256",
  }).toString();
  return { url: url.toString(), pending: { verifier, state } };
}

// What came back on the redirect URI: {code} or an OAuthError to throw.
export function readCallback(search, pending) {
  const params = new URLSearchParams(search);
  if (!pending) {
    throw new OAuthError("invalid_request", "no login was started from this tab");
  }
  if (params.get("state") !== pending.state) {
    throw new OAuthError("invalid_request", "the state returned does not match the one sent");
  }
  const error = params.get("error");
  if (error) {
    throw new OAuthError(error, params.get("error_description") || "");
  }
  const code = params.get("code");
  if (!code) throw new OAuthError("invalid_request", "no authorisation code returned");
  return code;
}

async function tokenRequest(config, form, fetchImpl) {
  const response = await fetchImpl(config.token_url, {
    method: "POST",
    headers: { Accept: "application/json" },
    body: new URLSearchParams(form),
    credentials: "same-origin",
    cache: "no-store",
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok || !body || typeof body.access_token !== "string") {
    const code = (body && body.error) || `http_${response.status}`;
    throw new OAuthError(code, (body && body.error_description) || "", response.status);
  }
  const impus = Array.isArray(body.impu) ? body.impu : body.impu ? [body.impu] : [];
  return {
    access_token: body.access_token,
    refresh_token: body.refresh_token || null,
    token_type: body.token_type,
    scope: body.scope || "",
    expires_in: Number(body.expires_in) || 0,
    expires_at: Date.now() + 1000 * (Number(body.expires_in) || 0),
    impi: body.impi || "",
    impu: impus,
  };
}

export function exchangeCode(config, code, verifier, fetchImpl = globalThis.fetch) {
  return tokenRequest(
    config,
    {
      grant_type: "authorization_code",
      code,
      redirect_uri: config.redirect_uri,
      client_id: config.client_id,
      code_verifier: verifier,
    },
    fetchImpl,
  );
}

export async function refreshTokens(config, previous, fetchImpl = globalThis.fetch) {
  const fresh = await tokenRequest(
    config,
    { grant_type: "refresh_token", refresh_token: previous.refresh_token, client_id: config.client_id },
    fetchImpl,
  );
  // A refresh response may leave the identities out: they have not changed.
  if (!fresh.impi) fresh.impi = previous.impi;
  if (fresh.impu.length === 0) fresh.impu = previous.impu;
  return fresh;
}

export async function revokeToken(revocationUrl, config, token, hint, fetchImpl = globalThis.fetch) {
  if (!revocationUrl || !token) return false;
  const response = await fetchImpl(revocationUrl, {
    method: "POST",
    body: new URLSearchParams({ token, token_type_hint: hint, client_id: config.client_id }),
    credentials: "same-origin",
    cache: "no-store",
  });
  return response.ok;
}

// When to refresh: at 80% of the lifetime, never sooner than 1 s from now.
export function refreshDelay(tokens, now = Date.now()) {
  const lifetime = 1000 * tokens.expires_in;
  const issued = tokens.expires_at - lifetime;
  return Math.max(1000, issued + 0.8 * lifetime - now);
}

// The claims of a JWT, for display only (the WIC does not verify it: the
// eP-CSCF does).  Null when the token is not a JWT.
export function jwtClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const text = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}
