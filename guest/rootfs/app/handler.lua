-- snapbox example request handler.
-- Set-up first (the part a snapshot can skip): a table of the first 1000
-- primes.  Then read ALL of stdin, expect {"n": <integer>} and answer
--   {"n": N, "fib": F, "prime": P}
-- F = fib(N) (fib(0)=0, fib(1)=1; null when N < 0 or N > 92, where it no
-- longer fits a 64-bit integer), P = the N-th prime, 1-based (null when N is
-- outside 1..1000).  Without a usable "n": {"error": "bad request"}, exit 1.

local NPRIMES = 1000
local primes = {}
do
  local c = 2
  while #primes < NPRIMES do
    local isprime = true
    for i = 1, #primes do
      local p = primes[i]
      if p * p > c then break end
      if c % p == 0 then isprime = false; break end
    end
    if isprime then primes[#primes + 1] = c end
    c = c + 1
  end
end

local function fib(n)
  if n < 0 or n > 92 then return nil end
  local a, b = 0, 1
  for _ = 1, n do a, b = b, a + b end
  return a
end

local function json(v)
  if v == nil then return "null" end
  return string.format("%d", v)
end

local req = io.read("a") or ""  -- the ready point: templates are saved here

-- Everything above ran once, in the template, and every clone shares it --
-- including the seed Lua gave math.random at start-up.  Reseed per request
-- from /dev/urandom, which is fresh in every clone.
do
  local f = io.open("/dev/urandom", "rb")
  if f then
    math.randomseed(string.unpack("<i8", f:read(8)))
    f:close()
  end
end
local s = req:match('"n"%s*:%s*(%-?%d+)')
local n = s and math.tointeger(tonumber(s))
if not n then
  io.write('{"error": "bad request"}\n')
  io.stdout:flush()
  os.exit(1)
end

io.write(string.format('{"n": %d, "fib": %s, "prime": %s}\n',
  n, json(fib(n)), json(primes[n])))
