/** Minimal HTML escaping for the one server-rendered page (RFC-free: the five XML specials). */
function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The login form, rendered without any script (the CSP forbids inline script anyway): the token
 * goes in a POST body, so it never appears in a URL, a browser history entry or an access log.
 */
export function loginPage(error: string | null): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-gateway status: sign in</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/status/assets/style.css"></head>
<body><main class="login"><h1>edge-gateway status</h1>
<p>This page is reachable from the network, so it asks for the management <strong>read token</strong>
(<code>edge-gateway ctl</code> uses the same one).</p>
${error ? `<p class="error" role="alert" id="login-error">${esc(error)}</p>` : ''}
<form method="post" action="/status/login">
<label for="token">Read token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Open</button>
</form></main></body></html>
`;
}
