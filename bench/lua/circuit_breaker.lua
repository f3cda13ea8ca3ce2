-- breakwater's circuit breaker, written as an Envoy Lua filter (envoy.filters.http.lua), for
-- `make bench`: the same per-request work as dist/circuit_breaker.wasm in its common
-- configuration, istio/base/circuit-breaker.yaml matched to every request (as bench/variants.py
-- runs it):
--
--   {"name": "recommendations", "match": {"path_prefix": "/"},
--    "failure": {"statuses": ["5xx"], "response_flags": ["UF","UT","UC","UR","URX","UH"],
--                "slow_call": "1s", "hang_after": "300ms"},
--    "trip": {"consecutive_failures": 5, "failure_rate": 50, "minimum_calls": 20,
--             "window": {"kind": "time", "size": "10s", "buckets": 10}},
--    "open": {"duration": "5s", "max_duration": "60s", "backoff_multiplier": 2.0, "jitter": 0.1},
--    "half_open": {"probes": 3, "max_wait": "10s"},
--    "response": {"status": 503, "headers": {"content-type": "application/json"},
--                 "body": "{\"error\":\"recommendations unavailable\"}"}, "mode": "enforce"}
--
-- (CONFIG below; `window = {kind = "count", size = 100}` gives the count window instead.)
-- Place it right before the router, like the Wasm filter.
--
-- Where it differs from the Wasm filter:
-- * State is per worker. Envoy gives each worker its own Lua state and Lua has no shared data,
--   so with N workers each worker trips on its own 5 consecutive failures (and judges its own
--   window), and half-open admits `probes` requests per worker. The Wasm filter keeps one state
--   per Envoy process in proxy-wasm shared data, updated with compare-and-swap; here a worker
--   is single-threaded, so there is nothing to race with and no CAS.
-- * Failures are 5xx statuses only. Envoy's response flags (UF, UT, UC, UR, URX, UH) are not
--   visible to Lua; the router's own replies for those failures carry 503/504 and so count,
--   but a reset after the response headers (flag UR with a 200) does not.
-- * The outcome is recorded at response headers (envoy_on_response), not at the end of the
--   stream: Lua has no end-of-stream/log callback. A call that never gets response headers
--   (client gone, reset) is not seen at all: the Wasm filter counts it as "unanswered" (and as
--   slow if it took longer than slow_call) and frees a half-open probe slot at once; here such
--   a probe's slot is only written off after half_open.max_wait.
-- * No `split_by`, `slow_call_rate`, `dry_run`/`forced_open`/`disabled` modes: the
--   configuration above uses none (slow calls are counted, as there, but trip nothing).
-- * No `hang_after` (istio/base sets 300ms): calls still in flight cannot be watched without a
--   per-worker list and a callback when they end, which Lua lacks. It only matters when the
--   upstream hangs (the outage scenario), not in the steady-state runs this script is for.
-- * The decision goes to dynamic metadata, not filter state: namespace `breakwater`, key
--   `circuit_breaker`, a struct {breaker, decision, state, epoch, arrived[, outcome]}; an access
--   log reads `%DYNAMIC_METADATA(breakwater:circuit_breaker:decision)%` where the Wasm filter's
--   is `%FILTER_STATE(wasm.breakwater.circuit_breaker:PLAIN)%`. `epoch` and `arrived`
--   carry the admission from the request to the response coroutine (the Wasm filter keeps them
--   in its stream context; Lua's two coroutines share only the stream's metadata).
-- * Stats use Envoy 1.40's Lua stats API (handle:stats()), named
--   `http.<hcm prefix>.lua.<stat_prefix>.breakwater.circuit_breaker.<name>.<stat>` rather than
--   `wasmcustom.breakwater.circuit_breaker.<name>.<stat>`; each use looks the stat up by name.
--   The `state` gauge is written by whichever worker changed phase last.
-- * The clock is handle:timestamp() (milliseconds); jitter comes from math.random.

local CONFIG = {
  name = "recommendations",
  path_prefix = "/",
  slow_call_ms = 1000,      -- nil: no slow-call detection
  consecutive_failures = 5,
  failure_rate = 50,        -- percent of the window
  minimum_calls = 20,
  window = { kind = "time", size_ms = 10000, buckets = 10 },
  open_ms = 5000,
  max_open_ms = 60000,
  backoff_multiplier = 2.0,
  jitter = 0.1,
  probes = 3,
  max_wait_ms = 10000,
  reply_status = "503",
  reply_content_type = "application/json",
  reply_body = '{"error":"recommendations unavailable"}',
}

local STAT = "breakwater.circuit_breaker." .. CONFIG.name .. "."
local NS = "breakwater"
local KEY = "circuit_breaker"
local PREFIX_LEN = #CONFIG.path_prefix
local PHASE_GAUGE = { closed = 0, open = 1, half_open = 2 }
local ENTERED = { closed = "closed", open = "opened", half_open = "half_opened" }

math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000))

-- This worker's breaker.
local S = {
  phase = "closed",
  epoch = 0,
  consecutive = 0,
  open_until = 0,
  since = 0,
  reopen = 0,            -- consecutive re-opens (backoff level)
  probes_admitted = 0,
  probes_succeeded = 0,
  last_probe = 0,
  window = nil,
}

-- The window: the last N calls (a ring) or the last T ms (buckets of T / buckets ms).
local W = CONFIG.window
local BUCKET_MS = W.kind == "time" and math.max(1, math.ceil(W.size_ms / W.buckets)) or nil

local function new_window()
  local w = { calls = 0, failures = 0, slow = 0, next = 1, items = {} }
  if W.kind == "time" then
    for i = 1, W.buckets do w.items[i] = { period = -1, calls = 0, failures = 0, slow = 0 } end
  end
  return w
end
S.window = new_window()

local function window_record(now, failed, slow)
  local w = S.window
  if W.kind == "time" then
    local period = math.floor(now / BUCKET_MS)
    local b = w.items[period % W.buckets + 1]
    if b.period ~= period then
      b.period, b.calls, b.failures, b.slow = period, 0, 0, 0
    end
    b.calls = b.calls + 1
    if failed then b.failures = b.failures + 1 end
    if slow then b.slow = b.slow + 1 end
    return
  end
  local i = w.next
  local old = w.items[i]
  if old then
    w.calls = w.calls - 1
    if old == "f" or old == "fs" then w.failures = w.failures - 1 end
    if old == "s" or old == "fs" then w.slow = w.slow - 1 end
  end
  w.items[i] = (failed and "f" or "") .. (slow and "s" or "")
  w.calls = w.calls + 1
  if failed then w.failures = w.failures + 1 end
  if slow then w.slow = w.slow + 1 end
  w.next = i % W.size + 1
end

-- calls, failures, slow calls inside the window at `now`
local function window_totals(now)
  local w = S.window
  if W.kind ~= "time" then return w.calls, w.failures, w.slow end
  local current = math.floor(now / BUCKET_MS)
  local calls, failures, slow = 0, 0, 0
  for _, b in ipairs(w.items) do
    if b.calls > 0 and b.period <= current and current - b.period < W.buckets then
      calls, failures, slow = calls + b.calls, failures + b.failures, slow + b.slow
    end
  end
  return calls, failures, slow
end

local function enter(phase, now)
  S.phase = phase
  S.epoch = S.epoch + 1
  S.since = now
  S.probes_admitted = 0
  S.probes_succeeded = 0
  S.consecutive = 0
end

local function describe_window(calls, failures, slow)
  local function rate(n) return calls > 0 and 100 * n / calls or 0 end
  return string.format("window: %d calls, failure rate %.1f%%, slow-call rate %.1f%%",
    calls, rate(failures), rate(slow))
end

local function transition(h, st, from, to, reason, detail, suffix)
  h:logWarn(string.format('breakwater circuit-breaker "%s": %s -> %s (reason: %s%s)%s',
    CONFIG.name, from, to, reason, detail or "", suffix or ""))
  st:counter(STAT .. "transitions." .. ENTERED[to]):inc()
  st:gauge(STAT .. "state"):set(PHASE_GAUGE[to])
end

-- Opens at backoff `level`; returns the open duration.
local function open(h, st, now, level, from, reason, detail)
  local grown = math.min(CONFIG.open_ms * CONFIG.backoff_multiplier ^ level, CONFIG.max_open_ms)
  local spread = 1 + CONFIG.jitter * (2 * math.random() - 1)
  local duration = math.max(1, math.floor(grown * spread + 0.5))
  enter("open", now)
  S.reopen = level
  S.open_until = now + duration
  transition(h, st, from, "open", reason, detail,
    string.format("; first probe in %.1fs", duration / 1000))
  return duration
end

local function reject(h, st, state, retry_after)
  st:counter(STAT .. "rejected"):inc()
  h:streamInfo():dynamicMetadata():set(NS, KEY, {
    breaker = CONFIG.name, decision = "rejected", state = state,
  })
  h:respond({
    [":status"] = CONFIG.reply_status,
    ["content-type"] = CONFIG.reply_content_type,
    ["retry-after"] = tostring(retry_after),
    ["x-breakwater-breaker"] = CONFIG.name,
  }, CONFIG.reply_body)
end

-- The admission, for envoy_on_response: metadata is all the two coroutines share.
local function admit(h, decision, state, epoch, now)
  h:streamInfo():dynamicMetadata():set(NS, KEY, {
    breaker = CONFIG.name, decision = decision, state = state, epoch = epoch, arrived = now,
  })
end

function envoy_on_request(h)
  local path = h:headers():get(":path") or ""
  if path:sub(1, PREFIX_LEN) ~= CONFIG.path_prefix then
    return
  end
  local phase = S.phase
  if phase == "closed" then
    -- The hot path: the clock only when slow calls are judged.
    admit(h, "passed", "closed", S.epoch, CONFIG.slow_call_ms and h:timestamp() or nil)
    return
  end
  local now = h:timestamp()
  local st = h:stats()
  if phase == "open" then
    -- Elapsed, or the clock stepped back by more than a second: admit a probe.
    if now < S.open_until and now + 1000 >= S.since then
      reject(h, st, "open", math.max(1, math.ceil((S.open_until - now) / 1000)))
      return
    end
    enter("half_open", now)
    S.probes_admitted = 1
    S.last_probe = now
    transition(h, st, "open", "half_open", "open_duration_elapsed",
      string.format("; admitting %d probe(s)", CONFIG.probes))
    st:counter(STAT .. "probes"):inc()
    admit(h, "probe", "half_open", S.epoch, now)
    return
  end
  -- half-open
  if S.probes_admitted < CONFIG.probes then
    S.probes_admitted = S.probes_admitted + 1
    S.last_probe = now
    st:counter(STAT .. "probes"):inc()
    admit(h, "probe", "half_open", S.epoch, now)
    return
  end
  local in_flight = S.probes_admitted - S.probes_succeeded
  if in_flight > 0 and (now >= S.last_probe + CONFIG.max_wait_ms or now + 1000 < S.last_probe) then
    -- Probes that never answered must not wedge the breaker: write them off.
    S.epoch = S.epoch + 1
    S.probes_admitted = S.probes_succeeded + 1
    S.last_probe = now
    st:counter(STAT .. "probes_written_off"):add(in_flight)
    st:counter(STAT .. "probes"):inc()
    admit(h, "probe", "half_open", S.epoch, now)
    return
  end
  reject(h, st, "half_open", 1)
end

function envoy_on_response(h)
  local md = h:streamInfo():dynamicMetadata():get(NS)
  local ticket = md and md[KEY]
  if ticket == nil or ticket.epoch == nil then
    return -- not matched, or rejected by the breaker itself
  end
  local status = tonumber(h:headers():get(":status")) or 0
  local failed = status >= 500 and status <= 599
  local now = (CONFIG.slow_call_ms or S.phase ~= "closed") and h:timestamp() or nil
  local slow = CONFIG.slow_call_ms ~= nil and ticket.arrived ~= nil
    and now - ticket.arrived > CONFIG.slow_call_ms
  local outcome = failed and "failure" or slow and "slow" or "success"
  local st = h:stats()
  st:counter(STAT .. "calls." .. outcome):inc()
  ticket.outcome = outcome
  h:streamInfo():dynamicMetadata():set(NS, KEY, ticket)
  if ticket.epoch ~= S.epoch then
    return -- admitted under a phase that has since ended
  end
  local probe = ticket.decision == "probe"
  local phase = S.phase
  if phase == "closed" and not probe then
    now = now or h:timestamp()
    window_record(now, failed, slow)
    S.consecutive = failed and S.consecutive + 1 or 0
    local calls, failures, slows = window_totals(now)
    local reason
    if S.consecutive >= CONFIG.consecutive_failures then
      reason = "consecutive_failures"
    elseif calls >= CONFIG.minimum_calls and 100 * failures / calls >= CONFIG.failure_rate then
      reason = "failure_rate"
    end
    if reason then
      local detail = "; " .. describe_window(calls, failures, slows)
      if reason == "consecutive_failures" then
        detail = detail .. string.format(", %d consecutive failures", CONFIG.consecutive_failures)
      end
      open(h, st, now, 0, "closed", reason, detail)
    end
  elseif phase == "half_open" and probe then
    if failed then
      open(h, st, now, S.reopen + 1, "half_open", "probe_failed", "")
      return
    end
    S.probes_succeeded = S.probes_succeeded + 1
    if S.probes_succeeded >= CONFIG.probes then
      enter("closed", now)
      S.reopen = 0
      S.window = new_window()
      transition(h, st, "half_open", "closed", "probes_succeeded",
        string.format("; all %d probe(s) succeeded", CONFIG.probes))
    end
  end
end
