// A tiny client written against the types generated from Emporium's OpenAPI document
// (`generated/schema.d.ts`, made by `clients/check-openapi.sh`). It only has to type-check under
// `tsc --strict`: a renamed operation, a lost field or a wrong type in the document breaks it.
import type { components, operations, paths } from "./generated/schema";

type Schemas = components["schemas"];
type Problem = Schemas["Problem"];
type CheckoutBody =
  operations["checkOutStoreCart"]["requestBody"]["content"]["application/json"];
type PlacedOrder =
  operations["checkOutStoreCart"]["responses"][201]["content"]["application/json"];
type CartAnswer = operations["getStoreCart"]["responses"][200]["content"]["application/json"];
type ProductPage =
  operations["listStoreProducts"]["responses"][200]["content"]["application/json"];
type Health = operations["getHealth"]["responses"][200]["content"]["application/json"];
type KeySet = operations["getJwks"]["responses"][200]["content"]["application/json"];

// The checkout body is exactly a payment choice.
const body: CheckoutBody = { payment: { provider: "test", token: "tok_success" } };
// @ts-expect-error The payment is required.
const noPayment: CheckoutBody = {};

// Path templates and operations line up.
const checkoutPath: keyof paths = "/v1/store/carts/{id}/checkout";

/** Checks out a cart; the answer is the placed order or a problem. */
export async function checkout(
  base: string,
  cartId: Schemas["CartId"],
  cartToken: string,
  idempotencyKey: string,
): Promise<PlacedOrder | Problem> {
  const answer = await fetch(`${base}${checkoutPath.replace("{id}", cartId)}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "idempotency-key": idempotencyKey,
      "x-cart-token": cartToken,
    },
    body: JSON.stringify(body),
  });
  return (await answer.json()) as PlacedOrder | Problem;
}

/** What a shopper sees of an order: its total, status and lines. */
export function summary(placed: PlacedOrder): string {
  const order: Schemas["Order"] = placed.order;
  const lines = order.lines.map((line) => `${line.quantity} × ${line.product_title} (${line.sku})`);
  const status: Schemas["OrderStatus"] = order.status;
  return `${order.id} ${status} ${order.total} ${order.currency}: ${lines.join(", ")}`;
}

/** The codes of a problem and of each invalid field, with its JSON Pointer. */
export function explain(problem: Problem): string[] {
  const fields = (problem.errors ?? []).map((e) => `${e.pointer}: ${e.code}`);
  return [`${problem.status} ${problem.code}`, ...fields];
}

/** A cart's item count and grand total. */
export function cartTotal(cart: CartAnswer): [number, number] {
  return [cart.items.length, cart.totals.total];
}

/** The next page's cursor of a product list, if any. */
export function nextCursor(page: ProductPage): string | undefined {
  return page.next_cursor ?? undefined;
}

/** Whether a health answer says the process is alive. */
export function alive(health: Health): boolean {
  return health.status === "ok";
}

/** The id and algorithm of each key that verifies access tokens. */
export function keyIds(set: KeySet): string[] {
  return set.keys.map((key) => `${key.kid} ${key.alg}`);
}

void noPayment;
