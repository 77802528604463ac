-- W3 for wrk: every request uploads a new small file under a name of its own.
--
--   wrk -c 8 -t 2 -d 10s -s bench/wrk_upload.lua URL -- MODE PREFIX SIZE [statuses]
--
-- MODE is "multipart" (POST /upload with a form field "file", as pcloud takes it) or
-- "put" (PUT /NAME, as nginx's dav module and copyparty take it). PREFIX keeps names
-- unique across runs; the thread number and a counter keep them unique within one.
-- Each multipart body has a boundary of its own, as real clients' (curl, OkHttp, browsers)
-- have: a server that compiles something per boundary pays for it here as it would there.
-- Each file's content is its own too (it starts with the file's name), as a phone's photos
-- are: a server that stores identical content once (pcloud) must not be measured on a
-- shortcut that real uploads never take.
-- SIZE is the file's size in bytes. Headers given to wrk with -H (an Authorization, say)
-- are sent too. With "statuses", it counts the answers by status and prints one
-- "status CODE COUNT" line per status at the end; that costs wrk some time per answer, so
-- it is asked for only where the server, not wrk, is the bottleneck.

local mode, prefix, payload = "put", "w3", string.rep("x", 4096)
local sent = 0
statuses = {}  -- a global, so that done() can read it with thread:get

-- setup() runs in wrk's main Lua state, once per thread; done() too, at the end.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("statuses")) do
      total[code] = (total[code] or 0) + count
    end
  end
  for code, count in pairs(total) do
    io.write(string.format("status %s %d\n", code, count))
  end
end

-- The rest runs in each thread's own state.
function init(args)
  mode = args[1] or mode
  prefix = args[2] or prefix
  payload = string.rep("x", tonumber(args[3]) or #payload)
  if args[4] ~= "statuses" then
    response = nil  -- wrk then skips parsing answers for us
  end
end

local function headers_with(extra)
  local headers = {}
  for key, value in pairs(wrk.headers) do headers[key] = value end
  for key, value in pairs(extra) do headers[key] = value end
  return headers
end

function request()
  sent = sent + 1
  local name = string.format("%s-%d-%d.bin", prefix, thread_number or 0, sent)
  local content = name .. string.sub(payload, #name + 1)
  if mode == "multipart" then
    local boundary = "----pcloud-bench-" .. name
    local body = "--" .. boundary .. "\r\n"
      .. 'Content-Disposition: form-data; name="file"; filename="' .. name .. '"\r\n'
      .. "Content-Type: application/octet-stream\r\n\r\n"
      .. content .. "\r\n--" .. boundary .. "--\r\n"
    local content_type = "multipart/form-data; boundary=" .. boundary
    return wrk.format("POST", "/upload", headers_with({["Content-Type"] = content_type}), body)
  end
  return wrk.format("PUT", "/" .. name, headers_with({}), content)
end

function response(status, headers, body)
  local code = tostring(status)
  statuses[code] = (statuses[code] or 0) + 1
end
