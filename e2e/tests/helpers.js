// Shared by the browser tests: the store under test, Chromium launched as this machine needs,
// sign-in, storefront calls over plain fetch, screenshots, the mail the store sent, and a webhook
// receiver.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

export const BASE = process.env.EMPORIUM_E2E_BASE ?? 'http://127.0.0.1:8080';
export const OWNER = { email: 'owner@demo.emporium.test', password: 'demo owner passphrase' };
export const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'screenshots');

/** Chromium from Debian, headless, with a fresh profile (`--user-data-dir`, which Playwright
 * takes as a persistent context) removed by `close`. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'emporium-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A page of `width` × `height` that records page errors. */
export async function newPage(context, width = 1280, height = 900) {
  const page = await context.newPage();
  await page.setViewportSize({ width, height });
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  return page;
}

export async function signIn(page, who = OWNER) {
  await page.goto(`${BASE}/admin/login`);
  await page.getByLabel('E-mail address').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${BASE}/admin`);
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** A JSON call to the store's API; fails the test on an unexpected status. */
export async function api(method, path, { body, headers = {}, expect = [200, 201] } = {}) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(expect.includes(response.status), `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Polls `check` until it returns a truthy value, or fails after `ms`. */
export async function eventually(check, ms = 20000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A guest's order of one unit of `variantId` through the storefront API, paid with the test
 * provider: cart, item, address, shipping, checkout. */
export async function placeOrder(variantId) {
  const created = await api('POST', '/v1/store/carts', { body: { currency: 'EUR', email: 'e2e-buyer@example.com' } });
  const cart = created.cart.id;
  const headers = { 'x-cart-token': created.token };
  await api('POST', `/v1/store/carts/${cart}/items`, { headers, body: { variant_id: variantId, quantity: 1 } });
  await api('PATCH', `/v1/store/carts/${cart}`, {
    headers,
    body: {
      shipping_address: {
        name: 'Erika Mustermann', line1: 'Heidestraße 17', city: 'Köln', postal_code: '51147', country: 'DE',
      },
    },
  });
  const options = await api('GET', `/v1/store/carts/${cart}/shipping-options`, { headers });
  assert.ok(options.length > 0, 'a shipping option to DE');
  await api('PUT', `/v1/store/carts/${cart}/shipping-option`, { headers, body: { option_id: options[0].id } });
  const placed = await api('POST', `/v1/store/carts/${cart}/checkout`, {
    headers: { ...headers, 'idempotency-key': `e2e-${Date.now()}` },
    body: { payment: { provider: 'test', token: 'tok_success' } },
  });
  return placed.order;
}

/** The messages the store's SMTP server received so far (run.sh's sink, one JSON line each). */
export function mailReceived() {
  const file = process.env.EMPORIUM_E2E_MAIL;
  assert.ok(file, 'EMPORIUM_E2E_MAIL names the SMTP server\'s log (run the tests through run.sh)');
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

/** A webhook receiver on loopback that keeps every request and answers 204. */
export async function startReceiver() {
  const got = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks`,
    got,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Whether a request carries a Standard Webhooks signature made with `secret` (`whsec_…`):
 * `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`. */
export function signedWith(request, secret) {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const { 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': signatures = '' } = request.headers;
  const expected = `v1,${createHmac('sha256', key).update(`${id}.${ts}.${request.body}`).digest('base64')}`;
  return signatures.split(' ').includes(expected);
}
