// How the audit commands reach a running xDS server: GET on its admin endpoint (loopback by default;
// in a cluster through `kubectl exec` or `kubectl port-forward`), errors that say which URL failed.

export const DEFAULT_ADMIN = 'http://127.0.0.1:18001';

/** GETs `path` with `params` from the admin endpoint at `admin`; the body, or an error naming the URL and status. */
export async function getFromAdmin(admin: string, path: string, params: Record<string, string | undefined> = {}): Promise<string> {
  const url = new URL(path, admin);
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, value);
  const response = await fetch(url).catch((error: unknown) => {
    throw new Error(`cannot reach the xDS server's admin endpoint at ${admin}: ${String(error)}`);
  });
  const body = await response.text();
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}: ${body.trim()}`);
  return body;
}
