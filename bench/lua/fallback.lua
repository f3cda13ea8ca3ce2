-- breakwater's fallback filter, written as an Envoy Lua filter (envoy.filters.http.lua), for
-- `make bench`: the same per-request work as dist/fallback.wasm in its common configuration,
-- istio/base/fallback.yaml matched to every GET and without its `service` source (as
-- bench/variants.py runs it):
--
--   {"name": "recommendations", "match": {"path_prefix": "/", "methods": ["GET"]},
--    "on": {"statuses": ["5xx"], "response_flags": ["UF", "UT", "UH"], "breaker_open": true},
--    "serve": [{"stale": {"max_age": "10m"}},
--              {"static": {"status": 200, "headers": {"content-type": "application/json"},
--                          "body": "[\"bestseller-1\",\"bestseller-2\"]"}}]}
--
-- with the cache {"max_entries": 1000, "max_bytes": 8388608, "max_body_bytes": 65536} and the
-- default min_store_interval (each URL stored at most once a second per worker). CONFIG below.
-- Place it before the circuit breaker (it sees responses after it).
--
-- Where it differs from the Wasm filter:
-- * The cache is per worker: a Lua table in each worker's Lua state. A response stored by one
--   worker is not served by another (the Wasm filter keeps one cache per Envoy process in
--   proxy-wasm shared data, with compare-and-swap on its index). So there is no CAS and no
--   cross-worker race, and the bounds (1000 entries, 8 MiB) hold per worker.
-- * The failed response is rewritten in place rather than replaced by a local reply: Envoy's
--   Lua `respond()` is only valid in the request path ("respond not currently supported in the
--   response path"). So the filter waits for the failed response's whole body (`body()`
--   buffers it) before it can swap status, headers and body; the Wasm filter sends its reply at
--   the failed response's headers and discards the body unread.
-- * Triggers are 5xx statuses and the breaker's rejection only: response flags are not visible
--   to Lua (`on.response_flags` is not supported; the router's own replies for UF, UT and UH
--   carry 503/504 and trigger as statuses). The breaker's decision is read from dynamic metadata
--   (`breakwater` / `circuit_breaker`, written by circuit_breaker.lua), not filter state.
-- * Good responses are copied as they stream past (`bodyChunks()`, not buffered), like the Wasm
--   filter; but there is no limit of 16 collections in flight per worker: Lua has no callback
--   when a stream is reset mid-body, so a counter of collections in flight could leak.
-- * No `service` source (Lua's httpCall could do it; the benchmark leaves it out), no
--   `vary` or `allow_credentials` (requests with Authorization or Cookie, responses with
--   Set-Cookie or any Vary are not kept, as with the Wasm filter's defaults).
-- * The request's method, authority and path are read at response time through
--   `handle:requestHeaders()` (Envoy 1.40), so the script needs no request-path coroutine;
--   the Wasm filter reads them at request headers.
-- * Decisions go to dynamic metadata (`breakwater` / `fallback`: {rule, trigger, served} and
--   `cache = "stored"`) instead of filter state `wasm.breakwater.fallback.*`; stats use the Lua
--   stats API (`http.<hcm prefix>.lua.<stat_prefix>.breakwater.fallback.…`), and the
--   `cache.entries` / `cache.bytes` gauges show the last storing worker's cache.

local CONFIG = {
  rule = "recommendations",
  path_prefix = "/",
  methods = { GET = true },
  statuses_from = 500, statuses_to = 599,
  breaker_open = true,
  stale_max_age_ms = 600000,
  stale_statuses = { [200] = true },
  static = {
    status = "200",
    headers = { ["content-type"] = "application/json" },
    body = '["bestseller-1","bestseller-2"]',
  },
  max_entries = 1000,
  max_bytes = 8388608,
  max_body_bytes = 65536,
  min_store_interval_ms = 1000,
  recent_stores = 1024,
}

local NS = "breakwater"
local STAT = "breakwater.fallback." .. CONFIG.rule .. "."
local CACHE_STAT = "breakwater.fallback.cache."
local PREFIX_LEN = #CONFIG.path_prefix
local lower, find, sub = string.lower, string.find, string.sub

-- Response headers never kept with an entry (hop-by-hop ones, ones set again when serving).
local DROP = {
  connection = true, ["keep-alive"] = true, ["transfer-encoding"] = true, upgrade = true,
  ["proxy-connection"] = true, ["content-length"] = true, date = true, age = true,
  server = true, ["set-cookie"] = true, ["x-breakwater-fallback"] = true,
}

-- This worker's cache: key -> entry; `order` lists keys oldest first (stale items skipped).
local cache = { entries = {}, order = {}, head = 1, tail = 0, count = 0, bytes = 0, seq = 0 }
local recent = {}        -- key -> ms of this worker's latest collection
local recent_count = 0

local function evict_oldest()
  while cache.head <= cache.tail do
    local item = cache.order[cache.head]
    cache.order[cache.head] = nil
    cache.head = cache.head + 1
    local entry = cache.entries[item.key]
    if entry and entry.seq == item.seq then
      cache.entries[item.key] = nil
      cache.count = cache.count - 1
      cache.bytes = cache.bytes - entry.size
      return true
    end
  end
  return false
end

local function store(h, key, entry)
  local old = cache.entries[key]
  if old then
    cache.entries[key] = nil
    cache.count = cache.count - 1
    cache.bytes = cache.bytes - old.size
  end
  local evicted = 0
  while (cache.count + 1 > CONFIG.max_entries or cache.bytes + entry.size > CONFIG.max_bytes)
    and evict_oldest() do
    evicted = evicted + 1
  end
  cache.seq = cache.seq + 1
  entry.seq = cache.seq
  cache.entries[key] = entry
  cache.count = cache.count + 1
  cache.bytes = cache.bytes + entry.size
  cache.tail = cache.tail + 1
  cache.order[cache.tail] = { key = key, seq = entry.seq }
  local st = h:stats()
  st:counter(STAT .. "cache.stores"):inc()
  if evicted > 0 then
    st:counter(CACHE_STAT .. "evictions"):add(evicted)
  end
  st:gauge(CACHE_STAT .. "entries"):set(cache.count)
  st:gauge(CACHE_STAT .. "bytes"):set(cache.bytes)
end

local function remember_store(key, now)
  if recent[key] == nil then
    if recent_count >= CONFIG.recent_stores then
      local oldest_key, oldest_at
      for k, at in pairs(recent) do
        if oldest_at == nil or at < oldest_at then oldest_key, oldest_at = k, at end
      end
      recent[oldest_key] = nil
      recent_count = recent_count - 1
    end
    recent_count = recent_count + 1
  end
  recent[key] = now
end

-- Cache-Control directives that matter for keeping a response.
local function cache_control(value)
  local d = {}
  if value == nil then return d end
  for item in value:gmatch("[^,]+") do
    local name, arg = item:match("^%s*([^=%s]+)%s*=?%s*\"?(%d*)\"?%s*$")
    if name then
      name = lower(name)
      if name == "no-store" then d.no_store = true
      elseif name == "private" then d.private = true
      elseif name == "no-cache" or name == "must-revalidate" or name == "proxy-revalidate" then
        d.revalidate = true
      elseif name == "max-age" then d.max_age = tonumber(arg)
      elseif name == "stale-if-error" then d.stale_if_error = tonumber(arg)
      end
    end
  end
  return d
end

-- Replaces the failed response, already received whole, with `status`, `headers`, `body`.
local function replace(h, status, header_list, body, source, age_s)
  local buffer = h:body(true)
  local headers = h:headers()
  local names = {}
  for name, _ in pairs(headers) do
    if sub(name, 1, 1) ~= ":" then names[#names + 1] = name end
  end
  for _, name in ipairs(names) do headers:remove(name) end
  headers:replace(":status", status)
  for _, pair in ipairs(header_list) do headers:add(pair[1], pair[2]) end
  headers:replace("x-breakwater-fallback", source)
  if age_s then headers:replace("age", tostring(age_s)) end
  headers:replace("content-length", tostring(#body))
  buffer:setBytes(body)
end

local STATIC_HEADERS = {}
for name, value in pairs(CONFIG.static.headers) do STATIC_HEADERS[#STATIC_HEADERS + 1] = { name, value } end

function envoy_on_response(h)
  local req = h:requestHeaders()
  local method = req:get(":method")
  local target = req:get(":path") or ""
  if not CONFIG.methods[method] or sub(target, 1, PREFIX_LEN) ~= CONFIG.path_prefix then
    return
  end
  local headers = h:headers()
  local status = tonumber(headers:get(":status")) or 0
  local trigger
  if CONFIG.breaker_open and status >= 400 then
    local md = h:streamInfo():dynamicMetadata():get(NS)
    local breaker = md and md.circuit_breaker
    if breaker and breaker.decision == "rejected" then trigger = "breaker_open" end
  end
  if trigger == nil and status >= CONFIG.statuses_from and status <= CONFIG.statuses_to then
    trigger = "status"
  end
  local key = method .. " " .. lower(req:get(":authority") or "") .. target
  local st = h:stats()
  if trigger then
    st:counter(STAT .. "triggered"):inc()
    local now = h:timestamp()
    local entry = cache.entries[key]
    local served
    if entry then
      local age = now - entry.stored_ms
      local limit = entry.keep_ms or CONFIG.stale_max_age_ms
      if age <= limit then
        st:counter(STAT .. "cache.hits"):inc()
        st:counter(STAT .. "served.stale"):inc()
        replace(h, entry.status, entry.headers, entry.body, "stale", math.floor(age / 1000))
        served = "stale"
      end
    end
    if served == nil then
      st:counter(STAT .. "cache.misses"):inc()
      st:counter(STAT .. "served.static"):inc()
      replace(h, CONFIG.static.status, STATIC_HEADERS, CONFIG.static.body, "static", nil)
      served = "static"
    end
    h:streamInfo():dynamicMetadata():set(NS, "fallback", {
      rule = CONFIG.rule, trigger = trigger, served = served,
    })
    return
  end
  -- A good response worth keeping?
  if not CONFIG.stale_statuses[status] then return end
  local now = h:timestamp()
  local last = recent[key]
  if last and now - last < CONFIG.min_store_interval_ms then return end
  if req:get("authorization") or req:get("cookie") then return end
  remember_store(key, now)
  local d = cache_control(headers:get("cache-control"))
  if d.no_store or d.private or (d.revalidate and d.stale_if_error == nil)
    or headers:get("set-cookie") or headers:get("vary") then
    return
  end
  local age_ms = (tonumber(headers:get("age") or "") or 0) * 1000
  local kept, size = {}, #key
  for name, value in pairs(headers) do
    if sub(name, 1, 1) ~= ":" and not DROP[name] and sub(name, 1, 8) ~= "x-envoy-" then
      kept[#kept + 1] = { name, value }
      size = size + #name + #value
    end
  end
  local keep_ms = d.stale_if_error and ((d.max_age or 0) + d.stale_if_error) * 1000 or nil
  -- Copy the body as it streams past (not buffered, not delayed).
  local parts, length = {}, 0
  for chunk in h:bodyChunks() do
    local n = chunk:length()
    if parts and n > 0 then
      length = length + n
      if length > CONFIG.max_body_bytes then
        parts = nil
      else
        parts[#parts + 1] = chunk:getBytes(0, n)
      end
    end
  end
  if parts == nil then return end
  local body = table.concat(parts)
  store(h, key, {
    stored_ms = now - age_ms, keep_ms = keep_ms, status = tostring(status),
    headers = kept, body = body, size = size + #body,
  })
  h:streamInfo():dynamicMetadata():set(NS, "fallback", { cache = "stored" })
end
