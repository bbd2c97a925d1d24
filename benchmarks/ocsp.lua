-- wrk script shared by every target of benchmarks/run.py, so both responders get the
-- very same requests.
--   OCSP_MODE   get    GET OCSP_PATH (the request is in the path)
--               post   POST the fixed body OCSP_BODY_HEX to OCSP_PATH
--               nonce  POST OCSP_PREFIX_HEX .. 16 random octets .. OCSP_SUFFIX_HEX:
--                      a fresh RFC 9654 nonce per request, so every answer is signed live
-- done() prints one machine-readable line starting with WRKJSON.
local mode = os.getenv("OCSP_MODE") or "get"
local path = os.getenv("OCSP_PATH") or "/"

local function unhex(text)
  return (text:gsub("..", function(pair) return string.char(tonumber(pair, 16)) end))
end

local post_headers = { ["Content-Type"] = "application/ocsp-request" }
local prefix, suffix

if mode == "get" then
  wrk.method = "GET"
  wrk.path = path
elseif mode == "post" then
  wrk.method = "POST"
  wrk.path = path
  wrk.body = unhex(os.getenv("OCSP_BODY_HEX"))
  wrk.headers["Content-Type"] = "application/ocsp-request"
elseif mode == "nonce" then
  prefix = unhex(os.getenv("OCSP_PREFIX_HEX"))
  suffix = unhex(os.getenv("OCSP_SUFFIX_HEX"))
else
  error("unknown OCSP_MODE " .. mode)
end

local head  -- nonce mode: the request up to the nonce, formatted once (Host is known in init)

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
  if mode == "nonce" then
    local template = wrk.format("POST", path, post_headers, prefix .. string.rep("\0", 16) .. suffix)
    head = template:sub(1, #template - 16 - #suffix)
  end
end

if mode == "nonce" then
  -- Per request only the 16 random octets are new: the load generator's own CPU per
  -- request comes out of the servers' share when they share its cores.
  local random, char = math.random, string.char
  request = function()
    return head .. char(random(0, 255), random(0, 255), random(0, 255), random(0, 255),
                        random(0, 255), random(0, 255), random(0, 255), random(0, 255),
                        random(0, 255), random(0, 255), random(0, 255), random(0, 255),
                        random(0, 255), random(0, 255), random(0, 255), random(0, 255)) .. suffix
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
end
