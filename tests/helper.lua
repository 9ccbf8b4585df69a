-- Shared by the specs: a connection to the test database, the path of the
-- sluice executable, and a way to run it as a child process.
local ffi = require "ffi"

ffi.cdef [[ long readlink(const char *path, char *buf, size_t len); ]]
ffi.cdef [[
  typedef struct { long sec; long nsec; } sluice_spec_time;
  int clock_gettime(int clock, sluice_spec_time *t);
]]

local H = {}

local function self_exe()
  local buf = ffi.new("char[4096]")
  local n = ffi.C.readlink("/proc/self/exe", buf, 4096)
  assert(n > 0, "cannot read /proc/self/exe")
  return ffi.string(buf, n)
end

H.exe = self_exe()
-- the source tree: the folder above this file
do
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  if src:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    src = p:read("*l") .. "/" .. src
    p:close()
  end
  H.root = src:match("^(.*)/tests/[^/]*$")
end

function H.url()
  local url = os.getenv("DATABASE_URL")
  assert(url and url ~= "", "the specs need DATABASE_URL (make test sets it)")
  return url
end

function H.connect()
  local db = require("sluice").connect(H.url())
  db:exec("SET client_min_messages = warning")
  return db
end

-- Shell-quote one word.
function H.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Run a shell command; returns exit code, stdout, stderr.
function H.run(cmd)
  local out = os.tmpname()
  local err = os.tmpname()
  local ok, how, code = os.execute(cmd .. " >" .. out .. " 2>" .. err)
  -- LuaJIT's os.execute returns the raw wait status (5.1 style)
  local status
  if type(ok) == "number" then
    status = ok >= 256 and math.floor(ok / 256) or ok
  else
    status = (how == "exit") and code or 128 + (code or 0)
  end
  local function slurp(p)
    local f = assert(io.open(p, "rb"))
    local s = f:read("*a")
    f:close()
    os.remove(p)
    return s
  end
  return status, slurp(out), slurp(err)
end

-- Run the sluice executable with the given argument string.
function H.sluice(args, env)
  return H.run((env and (env .. " ") or "") .. H.q(H.exe) .. " " .. args)
end

-- A new empty directory (the caller removes it).
function H.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. H.q(dir)) == 0)
  return dir
end

-- Rows in a table.
function H.count(db, tbl)
  return db:query_one("select count(*) as n from " .. tbl).n
end

-- Run fn and return its error (the spec fails if fn does not raise).
function H.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return err
end

-- Whole file contents (binary).
function H.slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- Write a whole file (binary).
function H.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Every record of a CSV file (sluice.csv.open), by record number, with
-- the line and offset of each; also the reader.
function H.csv_read_all(path, opts)
  local rows, lines, offsets = {}, {}, {}
  local r = require("sluice").csv.open(path, opts)
  while true do
    local row, n = r:next()
    if not row then break end
    rows[n] = row
    lines[n] = r.line
    offsets[n] = r.offset
  end
  return rows, lines, offsets, r
end

-- The error reading a CSV file raises, and the rows handed out before it.
function H.csv_read_err(path, opts)
  local rows = {}
  local ok, err = pcall(function()
    for row, n in require("sluice").csv.rows(path, opts) do rows[n] = row end
  end)
  assert(not ok, "expected an error")
  return err, rows
end

-- Seconds of a monotonic clock (fractional), for specs that time a wait.
local now_t = ffi.new("sluice_spec_time")
function H.now()
  ffi.C.clock_gettime(1, now_t) -- CLOCK_MONOTONIC
  return tonumber(now_t.sec) + tonumber(now_t.nsec) / 1e9
end

-- A fresh schema per spec file keeps the files independent.
function H.schema(db, name)
  db:exec("DROP SCHEMA IF EXISTS " .. name .. " CASCADE; CREATE SCHEMA " .. name)
  db:exec("SET search_path = " .. name)
  return name
end

return H
