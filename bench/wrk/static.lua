-- One fixed request, sent as fast as wrk can: LK_METHOD, LK_PATH, LK_AUTH (the Authorization
-- header) and, for a POST, LK_BODY as a form.
wrk.method = os.getenv("LK_METHOD")
wrk.path = os.getenv("LK_PATH")
wrk.headers["Authorization"] = os.getenv("LK_AUTH")
local body = os.getenv("LK_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
