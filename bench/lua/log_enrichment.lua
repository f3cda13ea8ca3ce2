-- breakwater's log-enrichment filter, written as an Envoy Lua filter (envoy.filters.http.lua),
-- for `make bench`: the same per-request work as dist/log_enrichment.wasm in its common
-- configuration, istio/base/log-enrichment.yaml with every request sampled and four logged
-- request headers (as bench/variants.py runs it):
--
--   {"service": {"environment": "production"},
--    "correlation": {"header": "x-correlation-id", "generate": true, "trust_incoming": true},
--    "workload_metadata": true,
--    "request_headers": ["user-agent", "accept", "x-tenant-id", "x-customer"],
--    "response_headers": ["content-type"],
--    "redact": {"mode": "mask", "max_value_bytes": 1024},
--    "sampling": {"rate": 1.0, "always_keep": ["5xx", "fallback", "breaker_rejected", "slow"],
--                 "slow": "1s"}}
--
-- (CONFIG below; everything else at the Wasm filter's defaults: all eight detectors and the
-- default query parameters, no echo of the ids in the response.) It builds one JSON record per
-- request, with the Wasm filter's field names and order, and puts it in dynamic metadata
-- `breakwater` / `record`: an access log prints it with `%DYNAMIC_METADATA(breakwater:record)%`.
-- Put it first in the filter chain.
--
-- Where it differs from the Wasm filter:
-- * The record is built in envoy_on_response, at the response headers: Lua has no
--   end-of-stream/log callback. So `duration_ms` is the time to the response headers (from this
--   filter's envoy_on_request, not Envoy's request start), body sizes are the Content-Length
--   headers when present (the Wasm filter logs the bytes that passed), and a request that never
--   gets response headers (client gone, reset) gets no record. Timestamps come from
--   handle:timestampString() (microseconds), read when the script runs.
-- * Fields Envoy's Lua API does not expose are absent: `envoy.response_flags`,
--   `envoy.response_code_details`, `upstream.address`, `envoy.cluster` and Istio's `k8s.*`
--   workload metadata (Lua cannot read the node metadata; the benchmark's Envoy has none
--   anyway). `envoy.route` comes from streamInfo():routeName().
-- * The correlation id for a request without one is a UUID v4 from math.random (LuaJIT's
--   PRNG, seeded per worker from the clock and an address): not cryptographic, unlike the Wasm
--   filter's host random source.
-- * Detectors are ported from the Wasm filter's (Lua patterns find the candidates; Luhn and
--   card scheme prefixes, IBAN country lengths and mod 97, Norwegian national ids with a real
--   date and both mod-11 digits, IPv4/IPv6 parsing, JWT shape, Bearer credentials, listed
--   parameters), with the same two levels of percent-decoding, markers and cut rule. They were
--   checked against the expected outputs of the Wasm filter's redaction unit tests
--   (filters/log-enrichment/src/redact_tests.rs; bench/lua_filters.py's smoke check sends them
--   through Envoy), not against its whole test suite.
--   `hash` mode (HMAC-SHA-256 pseudonyms) is not implemented: Lua has no HMAC (only mask mode).
-- * Sampling: rate 1.0 keeps everything, as configured; for rates below 1 the position is a
--   32-bit FNV-1a of the request id (LuaJIT's bit ops are 32-bit), not the Wasm filter's
--   64-bit FNV-1a + splitmix64, so a Lua and a Wasm proxy would not keep the same requests.
--   always_keep classes: 5xx, fallback, breaker_rejected, slow (no response_flags).
-- * Body excerpts (`body`) and `upstream_headers` are not implemented (off in this config).
-- * Breaker and fallback decisions are read from dynamic metadata written by
--   circuit_breaker.lua and fallback.lua (`breakwater` / `circuit_breaker`, `fallback`), not
--   from the Wasm filters' filter state. Stats use the Lua stats API:
--   `http.<hcm prefix>.lua.<stat_prefix>.breakwater.log.{records,redactions.<kind>,…}`.
-- * Invalid UTF-8 becomes U+FFFD as in the Wasm filter, but overlong or surrogate encodings
--   are accepted as they are.

local CONFIG = {
  service = { environment = "production" }, -- also name, version, region
  correlation_header = "x-correlation-id",
  generate = true,
  trust_incoming = true,
  echo_in_response = false,
  request_headers = { "user-agent", "accept", "x-tenant-id", "x-customer" },
  response_headers = { "content-type" },
  detectors = { "email", "payment_card", "iban", "no_national_id", "ipv4", "ipv6", "jwt", "bearer" },
  query_params = { "token", "access_token", "refresh_token", "id_token", "password", "passwd",
                   "secret", "api_key", "apikey", "sig", "signature", "x-amz-signature",
                   "x-goog-signature" },
  max_value_bytes = 1024,
  sampling_rate = 1.0,
  slow_ms = 1000,
}

local NS = "breakwater"
local MAX_SHORT = 256
local MAX_VALUES_PER_HEADER = 8
local KINDS = { "email", "payment_card", "iban", "no_national_id", "ipv4", "ipv6", "jwt", "bearer",
                "query_param" }

local byte, sub, find, char, fmt, lower, upper, gsub, rep =
  string.byte, string.sub, string.find, string.char, string.format, string.lower,
  string.upper, string.gsub, string.rep
local concat, floor = table.concat, math.floor
local bit = require("bit")

math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003))

local ENABLED = {}
for _, d in ipairs(CONFIG.detectors) do ENABLED[d] = true end
local LISTED = {}
for _, p in ipairs(CONFIG.query_params) do LISTED[lower(p)] = true end
local HAS_LISTED = next(LISTED) ~= nil

-- ---------------------------------------------------------------------------------------------
-- bytes

local function is_digit(b) return b ~= nil and b >= 48 and b <= 57 end
local function is_alpha(b) return b ~= nil and ((b >= 65 and b <= 90) or (b >= 97 and b <= 122)) end
local function is_alnum(b) return is_digit(b) or is_alpha(b) end
local function is_high(b) return b ~= nil and b >= 0x80 end

-- ---------------------------------------------------------------------------------------------
-- detectors: each appends spans {start, end_exclusive, kind} for one text

local function is_local_byte(b)
  return is_alnum(b) or b == 46 or b == 95 or b == 37 or b == 43 or b == 45 or is_high(b)
end
local function is_domain_byte(b) return is_alnum(b) or b == 46 or b == 45 or is_high(b) end

local function is_tld(tld)
  if #tld > 4 and lower(sub(tld, 1, 4)) == "xn--" and not find(tld, "[^%w%-]") then return true end
  return #tld >= 2 and not find(tld, "[^%a\128-\255]")
end

local function scan_emails(t, spans)
  local n, i = #t, 1
  while true do
    local at = find(t, "@", i, true)
    if not at then return end
    local s = at
    while s > 1 and is_local_byte(byte(t, s - 1)) do s = s - 1 end
    local e = at + 1
    while e <= n and is_domain_byte(byte(t, e)) do e = e + 1 end
    while e > at + 1 and not (is_alnum(byte(t, e - 1)) or is_high(byte(t, e - 1))) do e = e - 1 end
    local domain = sub(t, at + 1, e - 1)
    local dot = find(domain, "%.[^%.]*$")
    if s < at and dot and dot > 1 and is_tld(sub(domain, dot + 1)) then
      spans[#spans + 1] = { s, e, "email" }
      i = e
    else
      i = at + 1
    end
  end
end

local function luhn(digits)
  local sum, n = 0, #digits
  for i = n, 1, -1 do
    local d = digits[i]
    if (n - i) % 2 == 1 then
      d = d * 2
      if d > 9 then d = d - 9 end
    end
    sum = sum + d
  end
  return sum % 10 == 0
end

local function prefix(digits, k)
  local v = 0
  for i = 1, math.min(k, #digits) do v = v * 10 + digits[i] end
  return v
end

local function is_payment_card(digits)
  local len = #digits
  if len < 12 or len > 19 or not luhn(digits) then return false end
  local p1, p2, p3, p4, p6 = digits[1], prefix(digits, 2), prefix(digits, 3), prefix(digits, 4),
    prefix(digits, 6)
  if p1 == 4 then return len == 13 or len == 16 or len == 19 end
  if p1 == 2 then return p4 >= 2221 and p4 <= 2720 and len == 16 end
  if p1 == 5 then
    return (p2 >= 51 and p2 <= 55 and len == 16) or (p2 == 50 or (p2 >= 56 and p2 <= 59))
  end
  if p1 == 3 then
    return ((p2 == 34 or p2 == 37) and len == 15)
      or (((p3 >= 300 and p3 <= 305) or p2 == 36 or p2 == 38 or p2 == 39) and len >= 14)
      or (p4 >= 3528 and p4 <= 3589 and len >= 16)
  end
  if p1 == 6 then
    return ((p4 == 6011 or p2 == 65 or (p3 >= 644 and p3 <= 649) or (p6 >= 622126 and p6 <= 622925))
        and len >= 16)
      or (p2 == 62 and len >= 16)
      or (p2 == 60 or p2 == 63 or p2 == 67 or p2 == 68 or p2 == 69)
  end
  return false
end

local DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local function days_in_month(year, month)
  if month == 2 and ((year % 4 == 0 and year % 100 ~= 0) or year % 400 == 0) then return 29 end
  return DAYS[month] or 0
end

local W1 = { 3, 7, 6, 1, 8, 9, 4, 5, 2, 1 }
local W2 = { 5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1 }
local function is_national_id(d)
  if #d ~= 11 then return false end
  local day, month, yy = d[1] * 10 + d[2], d[3] * 10 + d[4], d[5] * 10 + d[6]
  if day > 40 then day = day - 40 end
  if month > 40 then month = month - 40 end
  local individual = d[7] * 100 + d[8] * 10 + d[9]
  local century
  if individual <= 499 then century = 1900
  elseif individual <= 749 and yy >= 54 then century = 1800
  elseif individual >= 500 and yy <= 39 then century = 2000
  elseif individual >= 900 and yy >= 40 then century = 1900
  else return false end
  if month < 1 or month > 12 or day == 0 or day > days_in_month(century + yy, month) then
    return false
  end
  local s1, s2 = 0, 0
  for i = 1, 10 do s1 = s1 + W1[i] * d[i] end
  for i = 1, 11 do s2 = s2 + W2[i] * d[i] end
  return s1 % 11 <= 3 and s2 % 11 == 0
end

-- Runs of digit groups joined by single spaces or dashes; every window of whole groups that
-- could hold a card (12-19 digits) or a national id (11) is tried, longest first.
local function match_windows(t, groups, kind, spans)
  local max_digits = kind == "payment_card" and 19 or 11
  local first, ng = 1, #groups
  while first <= ng do
    local count, last = 0, first
    while last <= ng do
      count = count + groups[last][2] - groups[last][1]
      if count > max_digits then break end
      last = last + 1
    end
    local found
    for stop = last - 1, first, -1 do
      local digits = {}
      local shape_ok = true
      for g = first, stop do
        local gs, ge = groups[g][1], groups[g][2]
        for p = gs, ge - 1 do digits[#digits + 1] = byte(t, p) - 48 end
        local glen = ge - gs
        if kind == "payment_card" and stop > first and (glen < 3 or glen > 6) then shape_ok = false end
      end
      local ok
      if kind == "payment_card" then
        ok = shape_ok and is_payment_card(digits)
      else
        local windows = stop - first + 1
        if windows == 1 then
          shape_ok = true
        elseif windows == 2 then
          local a, b = groups[first], groups[stop]
          local sep = byte(t, a[2])
          shape_ok = a[2] - a[1] == 6 and b[2] - b[1] == 5 and (sep == 32 or sep == 45)
        else
          shape_ok = false
        end
        ok = #digits == 11 and shape_ok and is_national_id(digits)
      end
      if ok then found = stop break end
    end
    if found then
      spans[#spans + 1] = { groups[first][1], groups[found][2], kind }
      first = found + 1
    else
      first = first + 1
    end
  end
end

local function scan_digit_groups(t, spans, cards, ids)
  local i = 1
  while true do
    local s = find(t, "%d", i)
    if not s then return end
    if is_alnum(byte(t, s - 1)) then
      local _, e = find(t, "^%w*", s)
      i = e + 1
    else
      local groups = {}
      local pos = s
      local e
      while true do
        local _, ge = find(t, "^%d+", pos)
        groups[#groups + 1] = { pos, ge + 1 }
        e = ge + 1
        local sep = byte(t, e)
        if (sep == 32 or sep == 45) and is_digit(byte(t, e + 1)) then
          pos = e + 1
        else
          break
        end
      end
      if is_alnum(byte(t, e)) then
        groups[#groups] = nil
        local _, we = find(t, "^%w*", e)
        e = we + 1
      end
      if #groups > 0 then
        if cards then match_windows(t, groups, "payment_card", spans) end
        if ids then match_windows(t, groups, "no_national_id", spans) end
      end
      i = math.max(e, s + 1)
    end
  end
end

local IBAN_LENGTHS = {
  AD = 24, AE = 23, AL = 28, AT = 20, AZ = 28, BA = 20, BE = 16, BG = 22, BH = 22, BR = 29,
  BY = 28, CH = 21, CR = 22, CY = 28, CZ = 24, DE = 22, DK = 18, DO = 28, EE = 20, EG = 29,
  ES = 24, FI = 18, FO = 18, FR = 27, GB = 22, GE = 22, GI = 23, GL = 18, GR = 27, GT = 28,
  HR = 21, HU = 28, IE = 22, IL = 23, IQ = 23, IS = 26, IT = 27, JO = 30, KW = 30, KZ = 20,
  LB = 28, LC = 32, LI = 21, LT = 20, LU = 20, LV = 21, MC = 27, MD = 24, ME = 22, MK = 19,
  MR = 27, MT = 31, MU = 30, NL = 18, NO = 15, PK = 24, PL = 28, PS = 29, PT = 25, QA = 29,
  RO = 24, RS = 22, SA = 24, SC = 31, SE = 24, SI = 19, SK = 24, SM = 27, ST = 25, SV = 28,
  TL = 23, TN = 24, TR = 26, UA = 29, VA = 22, VG = 24, XK = 20,
}

local function is_iban(compact)
  local rearranged = sub(compact, 5) .. sub(compact, 1, 4)
  local r = 0
  for k = 1, #rearranged do
    local c = byte(rearranged, k)
    if is_digit(c) then
      r = (r * 10 + c - 48) % 97
    else
      r = (r * 100 + c - 55) % 97
    end
  end
  return r == 1
end

local function scan_ibans(t, spans)
  local n, i = #t, 1
  while true do
    local s = find(t, "%a%a%d%d", i)
    if not s then return end
    local length = not is_alnum(byte(t, s - 1)) and IBAN_LENGTHS[upper(sub(t, s, s + 1))]
    local matched = false
    if length then
      local compact, e = {}, s
      while e <= n and #compact < length do
        local b = byte(t, e)
        if is_alnum(b) then
          compact[#compact + 1] = upper(char(b))
          e = e + 1
        elseif b == 32 and is_alnum(byte(t, e + 1)) then
          e = e + 1
        else
          break
        end
      end
      if #compact == length and not is_alnum(byte(t, e)) and is_iban(concat(compact)) then
        spans[#spans + 1] = { s, e, "iban" }
        i = e
        matched = true
      end
    end
    if not matched then i = s + 1 end
  end
end

local function parse_ipv4(text)
  local a, b, c, d = text:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  local octets = { a, b, c, d }
  for k = 1, 4 do
    local part = octets[k]
    if #part > 3 or (#part > 1 and byte(part, 1) == 48) then return nil end
    local v = tonumber(part)
    if v > 255 then return nil end
    octets[k] = v
  end
  return octets
end

local function truncated_ipv4(o) return fmt("%d.%d.%d.0/24", o[1], o[2], o[3]) end

local function scan_ipv4(t, spans)
  local i = 1
  while true do
    local s = find(t, "%d", i)
    if not s then return end
    local prev = byte(t, s - 1)
    if is_alnum(prev) or prev == 46 then
      local _, e = find(t, "^[%w%.]*", s)
      i = e + 1
    else
      -- Four dot-separated digit runs; a fifth ("1.2.3.4.5", a version) disqualifies.
      local e, dots = s, 0
      while true do
        local c = byte(t, e)
        if is_digit(c) then
          e = e + 1
        elseif c == 46 and dots < 3 and is_digit(byte(t, e + 1)) then
          dots = dots + 1
          e = e + 1
        else
          break
        end
      end
      local nxt = byte(t, e)
      local continues = is_alnum(nxt) or (nxt == 46 and is_digit(byte(t, e + 1)))
      if not continues and dots == 3 and parse_ipv4(sub(t, s, e - 1)) then
        spans[#spans + 1] = { s, e, "ipv4" }
      end
      i = math.max(e, s + 1)
    end
  end
end

local function parse_groups(text, out, ipv4_tail)
  if text == "" then return 0 end
  local count = 0
  local parts = {}
  for part in (text .. ":"):gmatch("([^:]*):") do parts[#parts + 1] = part end
  for k, part in ipairs(parts) do
    if k == #parts and ipv4_tail and find(part, ".", 1, true) then
      local o = parse_ipv4(part)
      if not o then return nil end
      out[count + 1] = o[1] * 256 + o[2]
      out[count + 2] = o[3] * 256 + o[4]
      return count + 2
    end
    if part == "" or #part > 4 or find(part, "[^%x]") then return nil end
    count = count + 1
    if count > 8 then return nil end
    out[count] = tonumber(part, 16)
  end
  return count
end

local function parse_ipv6(text)
  local dc = find(text, "::", 1, true)
  local head, tail = text, nil
  if dc then head, tail = sub(text, 1, dc - 1), sub(text, dc + 2) end
  local hg = {}
  local hl = parse_groups(head, hg, tail == nil)
  if not hl then return nil end
  if tail == nil then
    if hl ~= 8 then return nil end
    return hg
  end
  local tg = {}
  local tl = parse_groups(tail, tg, true)
  if not tl or hl + tl > 7 then return nil end
  local seg = { 0, 0, 0, 0, 0, 0, 0, 0 }
  for k = 1, hl do seg[k] = hg[k] end
  for k = 1, tl do seg[8 - tl + k] = tg[k] end
  return seg
end

local function truncated_ipv6(g)
  if g[1] == 0 and g[2] == 0 and g[3] == 0 and g[4] == 0 and g[5] == 0 and g[6] == 0xffff then
    return truncated_ipv4({ floor(g[7] / 256), g[7] % 256, floor(g[8] / 256), g[8] % 256 })
  end
  return fmt("%x:%x:%x::/48", g[1], g[2], g[3])
end

local function scan_ipv6(t, spans)
  local i = 1
  while true do
    local s, e = find(t, "[%x:%.]+", i)
    if not s then return end
    e = e + 1 -- exclusive
    local run_end = e
    while run_end > s and byte(t, run_end - 1) == 46 do run_end = run_end - 1 end
    local bounded = not is_alnum(byte(t, e))
    local start = s
    while bounded and start < run_end do
      local left_ok = (start == s and not is_alnum(byte(t, s - 1)))
        or (byte(t, start - 1) == 58 and byte(t, start - 2) ~= 58 and byte(t, start) ~= 58)
      local cand = sub(t, start, run_end - 1)
      if left_ok and #cand <= 45 and select(2, gsub(cand, ":", ":")) >= 2 and parse_ipv6(cand) then
        spans[#spans + 1] = { start, run_end, "ipv6" }
        break
      end
      local colon = find(cand, ":", 1, true)
      if not colon then break end
      start = start + colon
    end
    i = math.max(e, s + 1)
  end
end

local function scan_jwts(t, spans)
  local n, i = #t, 1
  while true do
    local s = find(t, "eyJ", i, true)
    if not s then return end
    if is_alnum(byte(t, s - 1)) then
      i = s + 1
    else
      local e, dots = s, 0
      while e <= n do
        local b = byte(t, e)
        if is_alnum(b) or b == 45 or b == 95 then
          e = e + 1
        elseif b == 46 and dots < 2 then
          dots = dots + 1
          e = e + 1
        else
          break
        end
      end
      if dots == 2 and e - s >= 16 then
        spans[#spans + 1] = { s, e, "jwt" }
        i = e
      else
        i = s + 1
      end
    end
  end
end

local function scan_bearer(t, spans)
  local i = 1
  while true do
    local s, e = find(t, "[Bb][Ee][Aa][Rr][Ee][Rr][ \t]+", i)
    if not s then return end
    if is_alnum(byte(t, s - 1)) then
      i = s + 1
    else
      local _, ce = find(t, "^[%w%-_%.~%+/=]*", e + 1)
      if ce > e then spans[#spans + 1] = { e + 1, ce + 1, "bearer" } end
      i = math.max(ce + 1, s + 1)
    end
  end
end

-- Is `name` a listed parameter (case-insensitive; a `[]` suffix and spaces ignored)?
local function is_listed(name)
  name = name:match("^%s*(.-)%s*$")
  local base = name:match("^(.-)%[[^%[]*%]$")
  return LISTED[lower(base or name)] == true
end

-- Values of listed parameters anywhere in free text (`…?token=abc&…`, `password=x`).
local function scan_params(t, spans)
  local i = 1
  while true do
    local eq = find(t, "=", i, true)
    if not eq then return end
    local name_end = eq
    while name_end > 1 and byte(t, name_end - 1) == 32 do name_end = name_end - 1 end
    if name_end > 1 and byte(t, name_end - 1) == 93 then -- `]`
      local from = math.max(1, name_end - 16)
      local window = sub(t, from, name_end - 1)
      local open = window:match(".*()%[")
      if open then name_end = from + open - 1 end
    end
    local name_start = name_end
    while name_start > 1 do
      local b = byte(t, name_start - 1)
      if is_alnum(b) or b == 95 or b == 45 or b == 46 then name_start = name_start - 1 else break end
    end
    local name = sub(t, name_start, name_end - 1)
    if name ~= "" and LISTED[lower(name)] then
      local vs = eq + 1
      while byte(t, vs) == 32 do vs = vs + 1 end
      local _, ve = find(t, "^[^&;#\"'<> \t\r\n]*", vs)
      if ve >= vs then spans[#spans + 1] = { vs, ve + 1, "query_param" } end
    end
    i = eq + 1
  end
end

local function scan_all(t, spans)
  if ENABLED.email and find(t, "@", 1, true) then scan_emails(t, spans) end
  local cards, ids = ENABLED.payment_card, ENABLED.no_national_id
  if (cards or ids) and find(t, "%d%D*%d%D*%d%D*%d%D*%d%D*%d%D*%d%D*%d%D*%d%D*%d%D*%d") then
    scan_digit_groups(t, spans, cards, ids)
  end
  if ENABLED.iban and find(t, "%a%a%d%d") then scan_ibans(t, spans) end
  if ENABLED.ipv4 and find(t, "%d%.%d") then scan_ipv4(t, spans) end
  if ENABLED.ipv6 and find(t, ":[%x:%.]*:") then scan_ipv6(t, spans) end
  if ENABLED.jwt and find(t, "eyJ", 1, true) then scan_jwts(t, spans) end
  if ENABLED.bearer and find(t, "[Bb][Ee][Aa][Rr][Ee][Rr][ \t]") then scan_bearer(t, spans) end
  if HAS_LISTED and find(t, "=", 1, true) then scan_params(t, spans) end
end

local function span_order(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] > b[2]
end

local function replacement(kind, value)
  if kind == "ipv4" then
    local o = parse_ipv4(value)
    if o then return truncated_ipv4(o) end
  elseif kind == "ipv6" then
    local g = parse_ipv6(value)
    if g then return truncated_ipv6(g) end
  end
  return "[REDACTED:" .. kind .. "]"
end

-- `text` with every detection replaced, or nil when there is none; counts by kind.
local function redact_once(t, counts)
  local spans = {}
  scan_all(t, spans)
  if #spans == 0 then return nil end
  if #spans > 1 then table.sort(spans, span_order) end
  local out, at = {}, 1
  for _, span in ipairs(spans) do
    if span[1] >= at then
      out[#out + 1] = sub(t, at, span[1] - 1)
      out[#out + 1] = replacement(span[3], sub(t, span[1], span[2] - 1))
      counts[span[3]] = (counts[span[3]] or 0) + 1
      at = span[2]
    end
  end
  out[#out + 1] = sub(t, at)
  return concat(out)
end

local function hex_char(h) return char(tonumber(h, 16)) end

-- %XX decoded (and `+` as a space outside paths), or nil when there is nothing to decode.
local function percent_decode(raw, plus_is_space)
  if not (find(raw, "%", 1, true) or (plus_is_space and find(raw, "+", 1, true))) then
    return nil
  end
  local decoded = plus_is_space and gsub(raw, "+", " ") or raw -- before %2B becomes '+'
  decoded = gsub(decoded, "%%(%x%x)", hex_char)
  if decoded == raw then return nil end
  return decoded
end

local function encode_byte(c) return fmt("%%%02X", byte(c)) end
local function percent_encode(bytes)
  return (gsub(bytes, "[^!$'()*,%-%./0-9:@A-Z%[%]_a-z~]", encode_byte))
end

-- Invalid UTF-8 sequences become U+FFFD.
local REPLACEMENT = "\239\191\189"
local function lossy(s)
  if not find(s, "[\128-\255]") then return s end
  local out, n, i = {}, #s, 1
  while i <= n do
    local b = byte(s, i)
    local need = b < 0x80 and 0 or (b >= 0xC2 and b <= 0xDF) and 1 or (b >= 0xE0 and b <= 0xEF) and 2
      or (b >= 0xF0 and b <= 0xF4) and 3 or -1
    local ok = need >= 0
    for k = 1, need > 0 and need or 0 do
      local c = byte(s, i + k)
      if c == nil or c < 0x80 or c > 0xBF then ok = false break end
    end
    if ok then
      out[#out + 1] = sub(s, i, i + need)
      i = i + need + 1
    else
      out[#out + 1] = REPLACEMENT
      i = i + 1
    end
  end
  return concat(out)
end

-- Caps `text` at `max` bytes; a cut inside a token drops the token's head; `…` marks the cut.
local function cap(text, max)
  if #text <= max then return text end
  local cut = max
  while cut > 0 and byte(text, cut + 1) >= 0x80 and byte(text, cut + 1) < 0xC0 do cut = cut - 1 end
  local nxt = byte(text, cut + 1)
  local inside = is_high(nxt) or is_alnum(nxt) or (nxt and find("@.+_%:-[]", char(nxt), 1, true))
  text = sub(text, 1, cut)
  if inside then text = gsub(text, "[%w@%.%+_%%:%-%[%]\128-\255]+$", "") end
  return text .. "…"
end

-- Redacts as sent, then percent-decoded up to two levels; the deepest level that found
-- something is written (decoded; re-encoded for URL parts), else the text as sent.
local function layers(raw, plus_is_space, url_form, counts)
  local sent = redact_once(raw, counts)
  local layer = sent or raw
  local hit
  for _ = 1, 2 do
    local decoded = percent_decode(layer, plus_is_space)
    if not decoded then break end
    local redacted = redact_once(decoded, counts)
    if redacted then
      hit = redacted
      layer = redacted
    else
      layer = decoded
    end
  end
  if hit then
    return url_form and percent_encode(hit) or lossy(hit)
  end
  return lossy(sent or raw)
end

local function redact_text(input, max, counts)
  return cap(layers(input, true, false, counts), max)
end

local function redact_path(raw, counts)
  return cap(layers(raw, false, true, counts), CONFIG.max_value_bytes)
end

local function redact_query(raw, counts)
  local out, pos, n = {}, 1, #raw
  while pos <= n + 1 do
    local sep = find(raw, "[&;]", pos)
    local pair = sub(raw, pos, (sep or n + 1) - 1)
    local eq = find(pair, "=", 1, true)
    local name = eq and sub(pair, 1, eq - 1) or pair
    out[#out + 1] = layers(name, true, true, counts)
    if eq then
      local value = sub(pair, eq + 1)
      out[#out + 1] = "="
      if value ~= "" and is_listed(percent_decode(name, true) or name) then
        counts.query_param = (counts.query_param or 0) + 1
        out[#out + 1] = "[REDACTED:query_param]"
      else
        out[#out + 1] = layers(value, true, true, counts)
      end
    end
    if not sep then break end
    out[#out + 1] = sub(raw, sep, sep)
    pos = sep + 1
  end
  return cap(concat(out), CONFIG.max_value_bytes)
end

local function finds_anything(text)
  local counts = {}
  layers(text, true, false, counts)
  return next(counts) ~= nil
end

-- `host[:port]` (IPv6 hosts in brackets); anything unclear stays whole.
local function split_authority(authority)
  local colon
  if byte(authority, 1) == 91 then
    local close = find(authority, "]", 1, true)
    if close and byte(authority, close + 1) == 58 then colon = close + 1 else return authority, nil end
  else
    colon = find(authority, ":", 1, true)
    if not colon or find(authority, ":", colon + 1, true) then return authority, nil end
  end
  local port = sub(authority, colon + 1)
  if find(port, "^%d+$") and tonumber(port) <= 65535 then
    return sub(authority, 1, colon - 1), tonumber(port)
  end
  return authority, nil
end

local function client_address(address)
  local host = split_authority(address)
  host = host:match("^%[(.*)%]$") or host
  local v4 = parse_ipv4(host)
  if v4 then return truncated_ipv4(v4) end
  local v6 = parse_ipv6(host)
  return v6 and truncated_ipv6(v6) or nil
end

-- ---------------------------------------------------------------------------------------------
-- the record

local JSON_ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function json_escape_char(c)
  return JSON_ESCAPES[c] or fmt("\\u%04x", byte(c))
end
local function json_string(s)
  s = gsub(s, '[%z\1-\31"\\\127]', json_escape_char)
  if find(s, "\226\128[\168\169]") then
    s = gsub(gsub(s, "\226\128\168", "\\u2028"), "\226\128\169", "\\u2029")
  end
  return '"' .. s .. '"'
end

local function uuid_v4()
  local r = math.random
  return fmt("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x", r(0, 0xffff), r(0, 0xffff), r(0, 0xffff),
    r(0, 0xfff), 0x8000 + r(0, 0x3fff), r(0, 0xffff), r(0, 0xffff), r(0, 0xffff))
end

local function parse_traceparent(value)
  value = value:match("^%s*(.-)%s*$")
  local version, trace_id, span_id, flags, rest =
    value:match("^(%x%x)%-(%x+)%-(%x+)%-(%x%x)(.*)$")
  if not version or #trace_id ~= 32 or #span_id ~= 16
    or find(version .. trace_id .. span_id .. flags, "[A-F]")
    or version == "ff" or (version == "00" and rest ~= "") or (rest ~= "" and byte(rest, 1) ~= 45)
    or not find(trace_id, "[^0]") or not find(span_id, "[^0]") then
    return nil
  end
  return trace_id, span_id
end

local function millis(us)
  return fmt("%d.%03d", floor(us / 1000), floor(us % 1000))
end

local function rfc3339(us)
  local ms = floor(us / 1000)
  return os.date("!%Y-%m-%dT%H:%M:%S", floor(ms / 1000)) .. fmt(".%03dZ", ms % 1000)
end

local function fnv1a32(s)
  local h = 0x811c9dc5
  for k = 1, #s do
    h = bit.bxor(h, byte(s, k))
    h = bit.tobit(bit.lshift(h, 24) + h * 0x193) -- h * 16777619 mod 2^32
  end
  return (h % 0x100000000) / 0x100000000
end

local function now_us(h)
  return tonumber(h:timestampString(EnvoyTimestampResolution.MICROSECOND))
end

function envoy_on_request(h)
  local start = now_us(h)
  local headers = h:headers()
  local name = CONFIG.correlation_header
  local incoming = headers:get(name)
  local action, id
  local valid = incoming ~= nil and #incoming >= 1 and #incoming <= 128
    and not find(incoming, "[^%w%._:%-]") and not finds_anything(incoming)
  if incoming ~= nil and CONFIG.trust_incoming and valid then
    action, id = "kept", incoming
  elseif incoming ~= nil and not valid then
    action, id = "replaced", uuid_v4()
    h:stats():counter("breakwater.log.correlation.replaced"):inc()
  elseif CONFIG.generate then
    action, id = "generated", uuid_v4()
    h:stats():counter("breakwater.log.correlation.generated"):inc()
  else
    action = "absent"
  end
  if id then
    headers:replace(name, id) -- also collapses a repeated header to the validated value
  elseif incoming ~= nil then
    headers:remove(name)
  end
  h:streamInfo():dynamicMetadata():set(NS, "log", { start_us = start, correlation = action })
end

-- Appends `"<prefix><name>": [values…]` (redacted) for each listed header present.
local function push_headers(r, prefix, names, headers, counts, user_agent_field)
  local max = CONFIG.max_value_bytes
  for _, name in ipairs(names) do
    local count = headers:getNumValues(name)
    if count > 0 then
      if user_agent_field and name == "user-agent" then
        r[#r + 1] = '"user_agent.original":' ..
          json_string(redact_text(headers:getAtIndex(name, 0), max, counts))
      else
        local values = {}
        for k = 0, math.min(count, MAX_VALUES_PER_HEADER) - 1 do
          values[#values + 1] = json_string(redact_text(headers:getAtIndex(name, k), max, counts))
        end
        r[#r + 1] = json_string(prefix .. name) .. ":[" .. concat(values, ",") .. "]"
      end
    end
  end
end

function envoy_on_response(h)
  local finished = now_us(h)
  local headers = h:headers()
  local req = h:requestHeaders()
  local info = h:streamInfo()
  local md = info:dynamicMetadata():get(NS) or {}
  local log = md.log or {}
  local corr_name = CONFIG.correlation_header
  local correlation_id = req:get(corr_name)
  local request_id = req:get("x-request-id")
  if CONFIG.echo_in_response then
    if correlation_id then headers:replace(corr_name, correlation_id) end
    if request_id then headers:replace("x-request-id", request_id) end
  end

  local status = tonumber(headers:get(":status"))
  local duration_us = log.start_us and finished - log.start_us or nil
  local breaker = md.circuit_breaker
  local fallback = md.fallback
  if fallback and fallback.served == nil then fallback = nil end
  local breaker_rejected = breaker ~= nil and breaker.decision == "rejected"

  -- Sampling (consistent on the request id).
  local sampling
  local key = request_id or correlation_id
  if CONFIG.sampling_rate >= 1 or (key and fnv1a32(key) < CONFIG.sampling_rate) then
    sampling = "sampled"
  elseif status and status >= 500 and status <= 599 then
    sampling = "kept:status"
  elseif breaker_rejected then
    sampling = "kept:breaker_rejected"
  elseif fallback then
    sampling = "kept:fallback"
  elseif duration_us and duration_us >= CONFIG.slow_ms * 1000 then
    sampling = "kept:slow"
  else
    h:stats():counter("breakwater.log.sampled_out"):inc()
    return
  end

  local counts = {}
  local max = CONFIG.max_value_bytes
  local r = {}
  if log.start_us then r[#r + 1] = '"timestamp":' .. json_string(rfc3339(log.start_us)) end
  if request_id then
    r[#r + 1] = '"request.id":' .. json_string(redact_text(request_id, MAX_SHORT, counts))
  end
  if correlation_id and log.correlation ~= "absent" then
    r[#r + 1] = '"correlation.id":' .. json_string(correlation_id)
  end
  local traceparent = req:get("traceparent")
  if traceparent then
    local trace_id, span_id = parse_traceparent(traceparent)
    if trace_id then
      r[#r + 1] = '"trace_id":' .. json_string(trace_id)
      r[#r + 1] = '"span_id":' .. json_string(span_id)
    end
  end
  local method = req:get(":method")
  if method then r[#r + 1] = '"http.request.method":' .. json_string(redact_text(method, 32, counts)) end
  local scheme = req:get(":scheme")
  if scheme then r[#r + 1] = '"url.scheme":' .. json_string(cap(lossy(scheme), 32)) end
  local authority = req:get(":authority")
  if authority then
    local host, port = split_authority(authority)
    r[#r + 1] = '"server.address":' .. json_string(redact_text(host, max, counts))
    if port then r[#r + 1] = '"server.port":' .. port end
  end
  local target = req:get(":path")
  if target then
    local q = find(target, "?", 1, true)
    local path = q and sub(target, 1, q - 1) or target
    r[#r + 1] = '"url.path":' .. json_string(redact_path(path, counts))
    if q and q < #target then
      r[#r + 1] = '"url.query":' .. json_string(redact_query(sub(target, q + 1), counts))
    end
  end
  local protocol = info:protocol()
  if protocol then
    r[#r + 1] = '"network.protocol.version":' .. json_string(cap(lossy(gsub(protocol, "^HTTP/", "")), 16))
  end
  if status then r[#r + 1] = '"http.response.status_code":' .. status end
  if duration_us then r[#r + 1] = '"duration_ms":' .. millis(duration_us) end
  local request_size = tonumber(req:get("content-length") or "")
  if request_size then r[#r + 1] = '"http.request.body.size":' .. request_size end
  local response_size = tonumber(headers:get("content-length") or "")
  if response_size then r[#r + 1] = '"http.response.body.size":' .. response_size end
  local route = info:routeName()
  if route and route ~= "" then r[#r + 1] = '"envoy.route":' .. json_string(cap(lossy(route), MAX_SHORT)) end
  local client = client_address(info:downstreamRemoteAddress() or "")
  if client then r[#r + 1] = '"client.address":' .. json_string(client) end
  push_headers(r, "http.request.header.", CONFIG.request_headers, req, counts, true)
  push_headers(r, "http.response.header.", CONFIG.response_headers, headers, counts, false)
  local service = CONFIG.service
  if service.name then r[#r + 1] = '"service.name":' .. json_string(service.name) end
  if service.version then r[#r + 1] = '"service.version":' .. json_string(service.version) end
  if service.environment then
    r[#r + 1] = '"deployment.environment.name":' .. json_string(service.environment)
  end
  if service.region then r[#r + 1] = '"cloud.region":' .. json_string(service.region) end
  if breaker then
    r[#r + 1] = '"breakwater.breaker.name":' .. json_string(cap(lossy(tostring(breaker.breaker or "")), 64))
    r[#r + 1] = '"breakwater.breaker.decision":' .. json_string(cap(lossy(tostring(breaker.decision or "")), 32))
    r[#r + 1] = '"breakwater.breaker.state":' .. json_string(cap(lossy(tostring(breaker.state or "")), 32))
    r[#r + 1] = '"breakwater.breaker_rejected":' .. (breaker_rejected and "true" or "false")
  end
  if fallback then
    r[#r + 1] = '"breakwater.fallback":' .. json_string(cap(lossy(tostring(fallback.served)), 32))
    r[#r + 1] = '"breakwater.fallback.rule":' .. json_string(cap(lossy(tostring(fallback.rule or "")), 64))
    r[#r + 1] = '"breakwater.fallback.trigger":' .. json_string(cap(lossy(tostring(fallback.trigger or "")), 32))
  end
  r[#r + 1] = '"breakwater.correlation":' .. json_string(log.correlation or "absent")
  r[#r + 1] = '"breakwater.sampling":' .. json_string(sampling)
  local total = 0
  local st = h:stats()
  for _, kind in ipairs(KINDS) do
    local n = counts[kind]
    if n then
      total = total + n
      st:counter("breakwater.log.redactions." .. kind):add(n)
    end
  end
  r[#r + 1] = '"breakwater.redactions":' .. total
  st:counter("breakwater.log.records"):inc()
  info:dynamicMetadata():set(NS, "record", "{" .. concat(r, ",") .. "}")
end
