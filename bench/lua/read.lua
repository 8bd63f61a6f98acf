-- GET paths read from a file, in a random order per thread, with a real token when one is given.
-- wrk -s bench/lua/read.lua URL -- <file of paths, one a line> [token]
-- No response() here: defining it makes wrk copy every body into Lua, which costs client CPU.

local count = 0
function setup(thread)
  count = count + 1
  thread:set("number", count)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  headers = {}
  if args[2] and args[2] ~= "" then headers["Authorization"] = "Bearer " .. args[2] end
  math.randomseed(number * 7919)
end

function request()
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
