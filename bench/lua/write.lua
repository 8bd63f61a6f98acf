-- POST prepared bodies, each course's in order, round-robin over the thread's own courses.
-- wrk -s bench/lua/write.lua URL -- <file> <threads> [token]
-- Each line of the file is: path TAB body TAB body ...; thread k (1-based) takes lines k, k+threads, ...
-- so no two threads write to the same course, and one course's next request goes out only after
-- every other course of the thread had one (its previous one is long answered). When every course
-- of a thread has run out of bodies, it counts an overflow and posts to a path that answers 404,
-- so the run fails loudly instead of quietly measuring refusals.

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("number", #threads)
end

local unpack = table.unpack or unpack  -- wrk embeds LuaJIT (Lua 5.1)

local function split(line)
  local fields = {}
  for field in string.gmatch(line, "[^\t]+") do fields[#fields + 1] = field end
  return fields
end

function init(args)
  local stride = tonumber(args[2])
  courses, position, overflow, statuses, first_error = {}, 0, 0, {}, ""
  headers = {["Content-Type"] = "application/json"}
  if args[3] and args[3] ~= "" then headers["Authorization"] = "Bearer " .. args[3] end
  local n = 0
  for line in io.lines(args[1]) do
    if n % stride == number - 1 then
      local fields = split(line)
      courses[#courses + 1] = {path = fields[1], bodies = {unpack(fields, 2)}, next = 1}
    end
    n = n + 1
  end
end

function request()
  for _ = 1, #courses do
    position = position % #courses + 1
    local course = courses[position]
    if course.next <= #course.bodies then
      course.next = course.next + 1
      return wrk.format("POST", course.path, headers, course.bodies[course.next - 1])
    end
  end
  overflow = overflow + 1
  return wrk.format("POST", "/v1/bench-ran-out-of-prepared-requests", headers, "{}")
end

function response(status, _, body)
  if status >= 300 then
    statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
    if first_error == "" then first_error = string.sub(body or "", 1, 400) end
  end
end

function done()
  for _, thread in ipairs(threads) do
    local ran_out = thread:get("overflow")
    if ran_out and ran_out > 0 then print("BENCH-RAN-OUT " .. ran_out) end
    for status, n in pairs(thread:get("statuses") or {}) do print("BENCH-STATUS " .. status .. " " .. n) end
    local err = thread:get("first_error")
    if err and err ~= "" then print("BENCH-FIRST-ERROR " .. err:gsub("\n", " ")) end
  end
end
