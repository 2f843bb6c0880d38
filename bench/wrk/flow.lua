-- Whole authorization-code flows with PKCE for a signed-in user whose consent is remembered:
-- GET authorize (LK_AUTHORIZE, with the session cookie LK_COOKIE) answers with a redirect
-- carrying a code; the next request on the thread redeems it at LK_TOKEN_PATH with the
-- verifier LK_VERIFIER and client authentication LK_AUTH. Counts finished flows (a token
-- answer) and anything else that is not a redirect with a code (err).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  flows, err = 0, 0
  codes = {}
  authorize = wrk.format("GET", os.getenv("LK_AUTHORIZE"), { ["Cookie"] = os.getenv("LK_COOKIE") })
  token_path = os.getenv("LK_TOKEN_PATH")
  token_headers = {
    ["Authorization"] = os.getenv("LK_AUTH"),
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
  token_tail = "&code_verifier=" .. os.getenv("LK_VERIFIER") .. "&redirect_uri=" .. os.getenv("LK_REDIRECT")
end

function request()
  local code = table.remove(codes)
  if code == nil then return authorize end
  return wrk.format("POST", token_path, token_headers, "grant_type=authorization_code&code=" .. code .. token_tail)
end

function response(status, headers, body)
  local location = headers["Location"] or headers["location"]
  local code = location and location:match("[?&]code=([^&]+)")
  if code then
    table.insert(codes, code)
  elseif status == 200 and body:find('"access_token"', 1, true) then
    flows = flows + 1
  else
    err = err + 1
    if first == nil then first = status .. " " .. body:sub(1, 300) end
  end
end

function done(summary, latency, requests)
  local f, e = 0, 0
  for _, t in ipairs(threads) do
    f = f + t:get("flows")
    e = e + t:get("err")
  end
  for _, t in ipairs(threads) do
    local f = t:get("first")
    if f then io.write("LK first error: " .. f .. "\n") break end
  end
  io.write(string.format("LK ok=%d err=%d\n", f, e))
end
