-- Refresh-token rotation: chains in parallel, each request spending the refresh token the
-- previous answer in its chain returned. LK_TOKENS names a file of refresh tokens, one a line
-- (each the head of a chain); the wrk threads share them out. LK_AUTH is the client's Basic
-- header. Counts answers with a new refresh token (ok) and anything else (err).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  ok, err = 0, 0
  queue = {}
  local n = 0
  for line in io.lines(os.getenv("LK_TOKENS")) do
    if n % counter_total() == index then table.insert(queue, line) end
    n = n + 1
  end
  headers = {
    ["Authorization"] = os.getenv("LK_AUTH"),
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
end

function counter_total()
  return tonumber(os.getenv("LK_THREADS"))
end

function request()
  local token = table.remove(queue)
  if token == nil then token = "exhausted" end
  return wrk.format("POST", os.getenv("LK_TOKEN_PATH"), headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, hdrs, body)
  local next_token = body:match('"refresh_token":"([^"]+)"')
  if status == 200 and next_token then
    ok = ok + 1
    table.insert(queue, next_token)
  else
    err = err + 1
    if first == nil then first = status .. " " .. body:sub(1, 300) end
  end
end

function done(summary, latency, requests)
  local o, e = 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    e = e + t:get("err")
  end
  for _, t in ipairs(threads) do
    local f = t:get("first")
    if f then io.write("LK first error: " .. f .. "\n") break end
  end
  io.write(string.format("LK ok=%d err=%d\n", o, e))
end
