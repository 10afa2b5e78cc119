"""Times the web pages of a running node, one request at a time over one keep-alive connection.

Usage: pages.py BASE_URL ADMIN_EMAIL ADMIN_PASSWORD [REQUESTS] > pages.json

Signs in to the site as the admin (form and CSRF cookie, as a browser does), books one seat
through the API so that a trip page exists, then GETs every main page REQUESTS times (200) and
prints, per page, its size and the time from sending the request to having read the whole
answer (on loopback: the server's time). Standard library only.
"""
import http.client, json, re, sys, time, urllib.parse

base, email, password = sys.argv[1], sys.argv[2], sys.argv[3]
requests = int(sys.argv[4]) if len(sys.argv) > 4 else 200
url = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
cookies = {}


def call(method, path, body=None, headers=None):
    headers = dict(headers or {})
    if cookies:
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    for value in resp.headers.get_all("set-cookie") or []:
        name, _, rest = value.partition("=")
        cookies[name] = rest.split(";", 1)[0]
    return resp.status, data


def api(method, path, token=None, body=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    saved = dict(cookies)
    cookies.clear()  # the API takes Bearer tokens, not the browser's cookies
    status, data = call(method, path, json.dumps(body) if body is not None else None, headers)
    cookies.update(saved)
    return status, json.loads(data or b"{}")


# Sign in as a browser does.
status, page = call("GET", "/signin")
csrf = re.search(rb'name="csrf" value="([0-9a-f]+\.[0-9a-f]+)"', page).group(1).decode()
form = urllib.parse.urlencode({"csrf": csrf, "email": email, "password": password, "next": "/"})
status, _ = call("POST", "/signin", form, {"content-type": "application/x-www-form-urlencoded"})
assert status == 303 and "contrail_session" in cookies, f"web sign-in answered {status}"

# A flight and a trip to show.
_, signed = api("POST", "/api/v1/auth/signin", body={"email": email, "password": password})
token = signed["token"]
_, found = api("GET", "/api/v1/flights?limit=1&sort=departure&cabin=economy")
flight = found["flights"][0]
order = {"segments": [{"flight_id": flight["id"], "cabin": "economy", "count": 1}],
         "passengers": [{"name": "Page Timer"}]}
status, placed = api("POST", "/api/v1/orders", token, order)
assert status in (200, 201), f"booking answered {status}: {placed}"
trip = placed["id"]

pages = [
    ("search form", "/"),
    ("search results", f"/?origin={flight['origin']}&destination={flight['destination']}&passengers=1"),
    ("flight and seat map", f"/flights/{flight['id']}?passengers=2"),
    ("sign in", "/signin"),
    ("my trips", "/trips"),
    ("trip", f"/trips/{trip}"),
    ("console: traffic", "/admin"),
    ("console: catalog", "/admin/catalog"),
    ("console: cluster", "/admin/cluster"),
    ("console: outbox", "/admin/outbox"),
]
results = []
for name, path in pages:
    times, size, status = [], 0, 0
    for _ in range(requests):
        started = time.perf_counter()
        status, body = call("GET", path)
        times.append((time.perf_counter() - started) * 1000)
        size = len(body)
    times.sort()
    results.append({
        "page": name, "path": path.split("?")[0], "status": status, "bytes": size,
        "p50_ms": times[len(times) // 2], "p99_ms": times[min(len(times) - 1, len(times) * 99 // 100)],
        "max_ms": times[-1], "requests": requests,
    })
print(json.dumps(results))
