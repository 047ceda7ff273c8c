// The back office's main path in a real browser: sign in, subscribe a webhook receiver to the
// order events, create a product with a variant, price and stock, publish it, find it through
// storefront search, buy it through the storefront API, capture and ship the order in the UI;
// then the shipped e-mail arrives at the SMTP server and the signed webhook deliveries at the
// receiver, and the UI lists them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, launch, newPage, signIn, screenshot, api, eventually, placeOrder, mailReceived,
  startReceiver, signedWith,
} from './helpers.js';

let chrome;
let receiver;
before(async () => {
  chrome = await launch();
  receiver = await startReceiver();
});
after(async () => {
  await chrome?.close();
  await receiver?.close();
});

test('staff sell a new product and ship its order from the admin UI', async () => {
  const page = await newPage(chrome.context);
  page.on('dialog', (d) => d.accept());
  await signIn(page);
  await screenshot(page, 'dashboard');

  // A webhook endpoint for the order events; its secret is shown once.
  await page.getByRole('link', { name: 'Webhooks' }).click();
  await page.getByLabel('URL (https://…)').fill(receiver.url);
  await page.getByLabel('Description').fill('Fulfilment system');
  await page.getByLabel(/^Event types/).fill('order.*');
  await page.getByRole('button', { name: 'Create endpoint' }).click();
  const secret = await page.locator('#webhook-secret').textContent();
  assert.match(secret, /^whsec_[A-Za-z0-9+/=]+$/);
  await page.getByRole('link', { name: 'Open the endpoint' }).click();
  const endpointUrl = page.url();
  assert.equal(await page.locator('#endpoint-state').textContent(), 'enabled');
  assert.equal(await page.content().then((html) => html.includes(secret)), false, 'the secret is shown once');

  const suffix = Date.now().toString(36);
  const title = `Brass lantern ${suffix}`;
  const sku = `LANTERN-${suffix}`.toUpperCase();
  await page.getByRole('link', { name: 'Products' }).click();
  await page.getByRole('link', { name: 'New product' }).click();
  await page.getByLabel('Title', { exact: true }).fill(title);
  await page.getByLabel('Description').fill('Lights the way.');
  await page.getByLabel('Options, one per line (Size: S, M, L)').fill('Finish: Brass');
  await page.getByLabel('SKU').fill(sku);
  await page.getByLabel('Option values (Size=M, Colour=Red)').fill('Finish=Brass');
  await page.getByLabel('Price', { exact: true }).fill('24.90');
  await page.getByLabel('Currency', { exact: true }).fill('EUR');
  await page.getByLabel('Units in stock').fill('5');
  await page.getByRole('button', { name: 'Create product' }).click();
  await page.getByText('Created.').waitFor();
  assert.equal(await page.locator('#product-status').textContent(), 'draft');
  await page.getByText('Available: 5').waitFor();

  await page.getByRole('button', { name: 'Publish' }).click();
  await page.getByText('Saved.').waitFor();
  assert.equal(await page.locator('#product-status').textContent(), 'published');
  await screenshot(page, 'product');

  const hit = await eventually(async () => {
    const found = await api('GET', `/v1/store/search?q=${encodeURIComponent(suffix)}&currency=EUR`);
    return found.hits.find((h) => h.title === title);
  }, 30000, 'the product in storefront search');
  const product = await api('GET', `/v1/store/products/${hit.id}`);
  const order = await placeOrder(product.variants[0].id);
  assert.equal(order.status, 'placed');

  await page.goto(`${BASE}/admin/orders`);
  await page.getByRole('link', { name: order.id }).click();
  assert.equal(await page.locator('#order-status').textContent(), 'placed');
  await page.getByRole('button', { name: 'Capture payment' }).click();
  await page.getByText('Done.').waitFor();
  assert.equal(await page.locator('#order-status').textContent(), 'paid');
  await page.getByRole('button', { name: 'Fulfil every line' }).click();
  await eventually(async () => (await page.locator('#order-status').textContent()) === 'fulfilled', 5000, 'fulfilled');
  await page.getByLabel('Tracking number').fill('TRACK-E2E-1');
  await page.getByRole('button', { name: 'Ship' }).click();
  await eventually(async () => (await page.locator('#order-status').textContent()) === 'shipped', 5000, 'shipped');
  await page.getByText('TRACK-E2E-1').waitFor();
  await screenshot(page, 'order');

  await page.goto(`${BASE}/admin/orders?status=shipped`);
  await page.getByRole('link', { name: order.id }).waitFor();

  // The customer's shipped e-mail, with its tracking number, at the SMTP server.
  const shipped = await eventually(() => mailReceived().find(
    (m) => m.to.includes('e2e-buyer@example.com') && (m.text ?? '').includes('TRACK-E2E-1'),
  ), 30000, 'the shipped e-mail');
  assert.match(shipped.subject, /shipped/i);
  assert.ok(shipped.html.includes('TRACK-E2E-1'));

  // The order's events at the receiver, each signed with the secret; the last says shipped.
  const delivered = await eventually(() => {
    const ours = receiver.got.filter((r) => r.body.includes(order.id));
    return ours.some((r) => JSON.parse(r.body).data?.order?.status === 'shipped') && ours;
  }, 30000, 'the shipped order delivered to the webhook receiver');
  for (const r of delivered) {
    assert.ok(signedWith(r, secret), `a valid signature on ${r.headers['webhook-id']}`);
    assert.match(JSON.parse(r.body).type, /^order\./);
  }
  // The UI lists those deliveries as succeeded, and shows one with its attempt and body.
  await page.goto(endpointUrl);
  const rows = page.locator('#delivery-list tbody tr');
  await eventually(async () => (await rows.count()) >= delivered.length, 10000, 'the deliveries listed');
  assert.equal(await page.locator('#delivery-list td[data-label="State"]', { hasText: 'succeeded' }).count(), await rows.count());
  await screenshot(page, 'webhook');
  await rows.first().getByRole('link').click();
  assert.equal(await page.locator('#delivery-status').textContent(), 'succeeded');
  await page.getByText(order.id).first().waitFor();
  await screenshot(page, 'webhook-delivery');

  // The same pages on a phone.
  const phone = await newPage(chrome.context, 390, 844);
  await signIn(phone);
  await screenshot(phone, 'dashboard-phone');
  await phone.goto(`${BASE}/admin/orders/${order.id}`);
  assert.equal(await phone.locator('#order-status').textContent(), 'shipped');
  await screenshot(phone, 'order-phone');
  // The menu folds behind a button on a phone and opens with it.
  const menu = phone.getByRole('button', { name: 'Menu' });
  await menu.click();
  await phone.getByRole('link', { name: 'Products' }).waitFor({ state: 'visible' });

  assert.deepEqual(page.errors, []);
  assert.deepEqual(phone.errors, []);
});

test('a wrong password shows an error and pages need a session', async () => {
  await chrome.context.clearCookies();
  const page = await newPage(chrome.context);
  await page.goto(`${BASE}/admin/orders`);
  assert.equal(new URL(page.url()).pathname, '/admin/login');
  await page.getByLabel('E-mail address').fill('owner@demo.emporium.test');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Wrong e-mail address or password').waitFor();
  assert.equal(await page.getByLabel('E-mail address').inputValue(), 'owner@demo.emporium.test');
});
