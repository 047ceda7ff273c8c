// Stored XSS: hostile text in every text field the UI writes (product, variant, customer
// groups, promotion, coupon, price list, staff user, webhook endpoint), then every page that
// shows it. No dialog
// may open, no payload may run (`window.__xss`), and no injected element may exist: the text
// must show as text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, launch, newPage, signIn } from './helpers.js';

const MARK = `x${Date.now().toString(36)}`;
const PAYLOADS = [
  `<script>window.__xss=1;alert(1)</script>${MARK}`,
  `"'><img src=x onerror="window.__xss=1;alert(2)">${MARK}`,
  `'><svg onload=window.__xss=1>${MARK}`,
  `</textarea><iframe src="javascript:alert(3)"></iframe>${MARK}`,
];
const ALL = PAYLOADS.join(' ');

let chrome;
before(async () => { chrome = await launch(); });
after(async () => { await chrome?.close(); });

/** Fills the labelled fields of the form holding `button` and submits it. */
async function submit(page, fields, button) {
  for (const [label, value] of Object.entries(fields)) {
    await page.getByLabel(label, { exact: true }).fill(value);
  }
  await page.getByRole('button', { name: button }).click();
  await page.waitForLoadState('load');
}

/** Fails when anything injected exists or ran on the page now shown. */
async function assertInert(page, dialogs, where) {
  const found = await page.evaluate(() => ({
    xss: window.__xss,
    inlineScripts: document.querySelectorAll('script:not([src])').length,
    scripts: [...document.querySelectorAll('script[src]')].map((s) => new URL(s.src).pathname),
    images: document.querySelectorAll('img[src="x"], img[onerror]').length,
    svgs: document.querySelectorAll('svg').length,
    iframes: document.querySelectorAll('iframe').length,
    handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
  }));
  assert.equal(found.xss, undefined, `${where}: a payload ran`);
  assert.equal(found.inlineScripts, 0, `${where}: an inline script exists`);
  assert.ok(found.scripts.every((p) => p.startsWith('/admin/assets/')), `${where}: ${found.scripts}`);
  assert.equal(found.images, 0, `${where}: an injected image exists`);
  assert.equal(found.svgs, 0, `${where}: an injected svg exists`);
  assert.equal(found.iframes, 0, `${where}: an injected iframe exists`);
  assert.equal(found.handlers, 0, `${where}: an element has an event handler attribute`);
  assert.deepEqual(dialogs, [], `${where}: a dialog opened`);
}

test('hostile text in every field is shown as text on every page', async () => {
  const page = await newPage(chrome.context);
  const dialogs = [];
  // Confirm dialogs of the UI's own delete buttons are not used here; any dialog is a payload.
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  await signIn(page);

  // A product with hostile title, description, options and variant fields.
  await page.goto(`${BASE}/admin/products/new`);
  await submit(page, {
    Title: `${PAYLOADS[0]} ${PAYLOADS[1]}`,
    Description: ALL,
    'Options, one per line (Size: S, M, L)': `${PAYLOADS[2]}: ${PAYLOADS[1]}`,
    'Variant title (optional)': PAYLOADS[1],
  }, 'Create product');
  await page.getByText('Created.').waitFor();
  const productUrl = page.url();
  await assertInert(page, dialogs, 'product page');
  // A refused form is refilled with the hostile text: an invalid SKU and handle.
  await page.goto(`${BASE}/admin/products/new`);
  await submit(page, { Title: PAYLOADS[1], 'Handle (URL name; made from the title when empty)': PAYLOADS[3], SKU: PAYLOADS[1], Price: '1.00' }, 'Create product');
  await page.getByText('The form was not saved.').waitFor();
  await assertInert(page, dialogs, 'refused product form');

  // The demo shopper's groups.
  await page.goto(`${BASE}/admin/customers`);
  await page.getByRole('link', { name: 'shopper@demo.emporium.test' }).click();
  const customerUrl = page.url();
  await submit(page, { 'Groups, separated by commas (wholesale, vip)': PAYLOADS.join(',') }, 'Save groups');
  await assertInert(page, dialogs, 'customer groups');

  // A promotion, a coupon and a price list.
  await page.goto(`${BASE}/admin/promotions`);
  await submit(page, { Name: PAYLOADS[1], 'Percent (for a percent off)': '5' }, 'Create promotion');
  await page.getByText('Created.').waitFor();
  await assertInert(page, dialogs, 'promotions');
  await page.goto(`${BASE}/admin/coupons`);
  await submit(page, { Code: PAYLOADS[1] }, 'Create coupon');
  await assertInert(page, dialogs, 'coupons (refused or created)');
  await page.goto(`${BASE}/admin/price-lists`);
  await submit(page, { Name: PAYLOADS[0], 'Customer groups, separated by commas (empty: everyone)': PAYLOADS[2] }, 'Create price list');
  await assertInert(page, dialogs, 'price lists');

  // A staff user with a hostile name.
  await page.goto(`${BASE}/admin/users`);
  await submit(page, {
    'E-mail address': `${MARK}@example.com`,
    Name: PAYLOADS[1],
    'Password (at least 10 characters)': 'a long enough passphrase',
  }, 'Create staff user');
  await assertInert(page, dialogs, 'staff users');

  // A webhook endpoint with a hostile description, and a refused one refilled with hostile text.
  const types = 'Event types, separated by commas (order.placed, payment.*, or * for all)';
  await page.goto(`${BASE}/admin/webhooks`);
  await submit(page, { 'URL (https://…)': 'http://127.0.0.1:9/hook', Description: ALL, [types]: 'product.*' }, 'Create endpoint');
  await page.getByRole('link', { name: 'Open the endpoint' }).click();
  const webhookUrl = page.url();
  await assertInert(page, dialogs, 'webhook endpoint');
  await page.goto(`${BASE}/admin/webhooks`);
  await submit(page, { 'URL (https://…)': PAYLOADS[1], Description: PAYLOADS[0], [types]: PAYLOADS[3] }, 'Create endpoint');
  await page.getByText('The form was not saved.').waitFor();
  await assertInert(page, dialogs, 'refused webhook form');

  // Every page that shows any of it.
  for (const path of [
    '/admin', '/admin/products', `/admin/products?q=${encodeURIComponent(MARK)}`, new URL(productUrl).pathname,
    '/admin/customers', new URL(customerUrl).pathname, '/admin/promotions', '/admin/coupons',
    '/admin/price-lists', '/admin/users', '/admin/webhooks', new URL(webhookUrl).pathname,
    `/admin/orders?status=${encodeURIComponent(PAYLOADS[1])}`,
    `/admin/${encodeURIComponent(PAYLOADS[0])}`,
  ]) {
    await page.goto(`${BASE}${path}`);
    await assertInert(page, dialogs, path);
  }
  // The text is there, as text.
  await page.goto(productUrl);
  assert.ok((await page.locator('main').innerText()).includes('<script>window.__xss=1;alert(1)</script>'));
  await page.goto(`${BASE}/admin/promotions`);
  assert.ok((await page.locator('main').innerText()).includes(`<img src=x onerror="window.__xss=1;alert(2)">${MARK}`));
  assert.deepEqual(page.errors, []);
});
