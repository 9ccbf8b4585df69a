-- The sluice executable itself: options, arg, errors, exit codes, Ctrl-C.
local H = require "helper"

local write = H.write

local tmp
setup(function() tmp = H.tmpdir() end)
teardown(function() os.execute("rm -rf " .. tmp) end)

describe("the sluice executable", function()
  it("prints --help and --version", function()
    local code, out = H.sluice("--help")
    assert.are.equal(0, code)
    assert.truthy(out:find("usage: sluice [options] [script.lua | -] [args...]", 1, true), out)
    assert.truthy(out:find("--tmpdb", 1, true))
    code, out = H.sluice("--version")
    assert.are.equal(0, code)
    assert.truthy(out:match("^sluice %d+%.%d+%.%d+ %(LuaJIT 2%.1"), out)
  end)

  it("runs the README's five-line example twice in a row on the same database", function()
    local readme = H.slurp(H.root .. "/README.md")
    local code = readme:match("## Five lines\n\n```lua\n(.-)```")
    assert.truthy(code, "the README's five-line example")
    local n = 0
    for _ in code:gmatch("[^\n]+") do n = n + 1 end
    assert.are.equal(5, n)
    -- in a schema of its own, so the table is new to the first run
    write(tmp .. "/pets.lua", code)
    local env = "PGOPTIONS='-c search_path=readme_pets'"
    local db = H.connect()
    db:exec("drop schema if exists readme_pets cascade; create schema readme_pets")
    for run = 1, 2 do
      local rc, out, err = H.sluice(H.q(tmp .. "/pets.lua"), env)
      assert.are.equal(0, rc, err)
      assert.are.equal("1\n", out, "run " .. run)
    end
    assert.are.equal(1, db:query_one("select count(*)::int as n from readme_pets.pets").n)
    db:exec("drop schema readme_pets cascade")
    db:close()
  end)

  it("runs a script with arg set as luajit does, and passes ... too", function()
    write(tmp .. "/args.lua", [[
      print(arg[0], arg[1], arg[2], #arg, select("#", ...), ...)
      print(arg[-1] ~= nil)]])
    local code, out = H.sluice(H.q(tmp .. "/args.lua") .. " a 'b c'")
    assert.are.equal(0, code)
    assert.are.equal(tmp .. "/args.lua\ta\tb c\t2\t2\ta\tb c\ntrue\n", out)
  end)

  it("fails when standard output cannot be written (a full disk) instead of exiting 0", function()
    local code, out, err = H.run("(" .. H.q(H.exe) .. [[ -e 'print("a row")' > /dev/full)]])
    assert.are.equal(1, code, out)
    assert.are.equal("sluice: cannot write to standard output: No space left on device\n", err)
    -- an error of the script is still reported, and the exit code stays 1
    code, out, err = H.run("(" .. H.q(H.exe) .. [[ -e 'print("a row") error("boom")' > /dev/full)]])
    assert.are.equal(1, code, out)
    assert.truthy(err:find("^sluice: %(command line%):1: boom\n"), err)
    assert.truthy(err:find("\nsluice: cannot write to standard output: No space left on device\n$"), err)
  end)

  it("runs -e code, and a script from stdin with -", function()
    local code, out = H.sluice([[-e 'x = 20' -e 'print(x + 1)']])
    assert.are.equal(0, code)
    assert.are.equal("21\n", out)
    code, out = H.run("echo 'print(\"from stdin\", ...)' | " .. H.q(H.exe) .. " - z")
    assert.are.equal(0, code)
    assert.are.equal("from stdin\tz\n", out)
  end)

  it("finds require 'sluice' from any directory, and the script's own folder", function()
    write(tmp .. "/mylib.lua", "return { answer = 42 }")
    write(tmp .. "/main.lua", [[
      local sluice = require "sluice"
      print(require("mylib").answer, type(sluice.connect), sluice.version)]])
    local code, out, err = H.run("cd / && " .. H.q(H.exe) .. " " .. H.q(tmp .. "/main.lua"))
    assert.are.equal(0, code, err)
    assert.truthy(out:match("^42\tfunction\t%d+%.%d+%.%d+\n$"), out)
  end)

  it("prints an error with a traceback and exits 1", function()
    write(tmp .. "/boom.lua", "local function f() error('boom here') end\nf()\n")
    local code, out, err = H.sluice(H.q(tmp .. "/boom.lua"))
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(err:find("boom.lua:1: boom here", 1, true), err)
    assert.truthy(err:find("stack traceback:", 1, true), err)
    assert.truthy(err:find("boom.lua:2: in main chunk", 1, true), err)
  end)

  it("prints a database error object like psql, with a traceback", function()
    local code, _, err = H.sluice([[-e 'require"sluice".connect():exec("select * from no_such_table")']])
    assert.are.equal(1, code)
    assert.truthy(err:find('ERROR:  42P01: relation "no_such_table" does not exist', 1, true), err)
    assert.truthy(err:find("stack traceback:", 1, true), err)
  end)

  it("reports a syntax error and an unknown option", function()
    write(tmp .. "/bad.lua", "local x = = 1\n")
    local code, _, err = H.sluice(H.q(tmp .. "/bad.lua"))
    assert.are.equal(1, code)
    assert.truthy(err:find("bad.lua:1:", 1, true), err)
    code, _, err = H.sluice("--frobnicate")
    assert.are.equal(2, code)
    assert.truthy(err:find("unknown option --frobnicate", 1, true), err)
    code, _, err = H.sluice("nonexistent_script.lua")
    assert.are.equal(1, code)
    assert.truthy(err:find("cannot open nonexistent_script.lua", 1, true), err)
  end)

  it("exits with the script's os.exit code", function()
    local code = H.sluice([[-e 'os.exit(7)']])
    assert.are.equal(7, code)
  end)
end)

describe("Ctrl-C", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "sigint")
    db:exec("create table t(id int)")
  end)
  teardown(function() db:close() end)

  -- start a script in the background, wait until it says it is ready,
  -- send SIGINT, and return its exit code and stderr
  local function interrupt(body)
    local script, ready = tmp .. "/long.lua", tmp .. "/ready"
    os.remove(ready)
    write(script, [[
      local db = require("sluice").connect()
      db:exec("set search_path = sigint")
      local function ready() io.open("]] .. ready .. [[", "w"):close() end
      ]] .. body)
    local cmd = ("timeout -s KILL 30 %s %s 2>%s/err & pid=$!; for i in $(seq 100); do [ -e %s ] && break; sleep 0.05; done; "
      .. "sleep 0.2; kill -INT $pid; wait $pid; echo $? > %s/code")
      :format(H.q(H.exe), H.q(script), tmp, ready, tmp)
    local t0 = os.time()
    os.execute(cmd)
    local f = assert(io.open(tmp .. "/code")); local code = tonumber(f:read("*a")); f:close()
    f = assert(io.open(tmp .. "/err")); local err = f:read("*a"); f:close()
    return code, err, os.time() - t0
  end

  it("cancels a running statement and rolls back the open transaction", function()
    local code, err, secs = interrupt([[
      db:begin()
      db:exec("insert into t values (1)")
      ready()
      db:exec("select pg_sleep(30)")
      db:commit()]])
    assert.are.equal(1, code)
    assert.truthy(err:find("canceling statement due to user request", 1, true), err)
    assert.truthy(secs < 10)
    assert.are.equal(0, db:query_one("select count(*) as n from t").n)
  end)

  it("interrupts a row-by-row loop inside transaction(fn), which rolls back", function()
    local code, err = interrupt([[
      db:transaction(function()
        local ins = db:prepare("insert into t values ($1)")
        local i = 0
        while true do
          i = i + 1
          ins:exec(i)
          if i == 100 then ready() end
        end
      end)]])
    assert.are.equal(1, code)
    assert.truthy(err:find("interrupted (Ctrl-C)", 1, true)
      or err:find("canceling statement due to user request", 1, true), err)
    assert.are.equal(0, db:query_one("select count(*) as n from t").n)
  end)
end)

describe("the prompt (sluice repl)", function()
  it("prints expressions, query results as tables, and continues unfinished lines", function()
    local input = os.tmpname()
    local f = assert(io.open(input, "w"))
    f:write("x = 40\nx +\n2\ndb:query('select 1 as a, null::text as b')\nlocal y = = 1\nfor i = 1, 2 do\nprint('i', i)\nend\n")
    f:close()
    local code, out, err = H.run(H.q(H.exe) .. " repl < " .. input)
    os.remove(input)
    assert.are.equal(0, code)
    assert.truthy(out:find("\n42\n", 1, true), out)
    -- as psql prints it: NULL an empty cell, the last column unpadded
    assert.truthy(out:find(" a | b \n---+---\n 1 | \n(1 row)\n", 1, true), out)
    assert.truthy(out:find("i\t1\ni\t2\n", 1, true), out)
    assert.truthy(err:find("stdin:1: unexpected symbol near '='", 1, true), err)
  end)
end)
