-- Heartbeat bulk ingestion: LK_PATH, LK_AUTH, and 100 new heartbeats in each request (their
-- times move on with every request, so none is a duplicate).
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end

function init(args)
  sent = 0
  headers = { ["Authorization"] = os.getenv("LK_AUTH"), ["Content-Type"] = "application/json" }
  path = os.getenv("LK_PATH")
  base = 1700000000 + index * 10000000
end

function request()
  local t0 = base + sent * 100
  sent = sent + 1
  local parts = {}
  for i = 0, 99 do
    parts[#parts + 1] = string.format(
      '{"entity":"/src/bench/file%d.rs","type":"file","category":"coding","time":%d.5,"project":"bench","language":"Rust","is_write":%s}',
      i % 7, t0 + i, i % 5 == 0 and "true" or "false")
  end
  return wrk.format("POST", path, headers, "[" .. table.concat(parts, ",") .. "]")
end
