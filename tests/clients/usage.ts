// Type-checked by tests/test_generated_clients.py against the types openapi-typescript generates (api.d.ts).
import type { components, operations, paths } from "./api";

type Json<T> = T extends { content: { "application/json": infer B } } ? B : never;

// The token endpoint: a form body in, a bearer token out.
type TokenForm = paths["/v1/auth/token"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"];
const form: TokenForm = { grant_type: "client_credentials", client_id: "ehr", client_secret: "s" };
type Token = Json<paths["/v1/auth/token"]["post"]["responses"][200]>;
export const bearer = (token: Token): string => `${token.token_type} ${token.access_token}`;

// The chart: SVG text, whichever of its two media types was asked for.
type Chart = paths["/v1/courses/{course_id}/outcomes/chart.svg"]["get"];
const query: Chart["parameters"]["query"] = { instrument: "phq-9" };
type ChartBody = Chart["responses"][200]["content"]["image/svg+xml"];
export const chart: ChartBody = "<svg xmlns='http://www.w3.org/2000/svg'/>";

// FHIR: $everything is a searchset Bundle; errors are OperationOutcomes.
type Everything = operations["fhir-episode_of_care_everything"]["responses"];
export const total = (bundle: Everything[200]["content"]["application/fhir+json"]): number => bundle.total;
export const outcome: Everything[404]["content"]["application/fhir+json"]["resourceType"] = "OperationOutcome";

// Problems (RFC 9457) on the v1 API.
export const problem = (p: components["schemas"]["Problem"]): string => p.title;
export { form, query };
