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

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
end

if mode == "nonce" then
  request = function()
    local nonce = {}
    for i = 1, 16 do
      nonce[i] = string.char(math.random(0, 255))
    end
    return wrk.format("POST", path, post_headers, prefix .. table.concat(nonce) .. suffix)
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
