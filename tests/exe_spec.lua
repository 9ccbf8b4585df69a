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

  it("runs the README's first-hour example twice in a row, with the same table both times", function()
    local readme = H.slurp(H.root .. "/README.md")
    local code = readme:match("## The first hour\n.-```lua\n(.-)```")
    assert.truthy(code, "the README's first-hour example")
    write(tmp .. "/people.lua", code)
    local env = "PGOPTIONS='-c search_path=readme_people'"
    local db = H.connect()
    db:exec("drop schema if exists readme_people cascade; create schema readme_people")
    local first
    for run = 1, 2 do
      local rc, out, err = H.sluice(H.q(tmp .. "/people.lua"), env)
      assert.are.equal(0, rc, err)
      assert.are.equal("10000\t0\n", out, "run " .. run)
      local got = db:query_one("select count(*)::int as n, md5(string_agg(p::text, ',' order by id)) as h "
                               .. "from readme_people.people p")
      assert.are.equal(10000, got.n)
      first = first or got.h
      assert.are.equal(first, got.h, "run " .. run .. " changed the rows")
    end
    db:exec("drop schema readme_people cascade")
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

  it("prints a Lua error as file:line: message, the stack only with --traceback or SLUICE_DEBUG", function()
    local boom = tmp .. "/boom.lua"
    write(boom, "local function f() error('boom here') end\nf()\n")
    local code, out, err = H.sluice(H.q(boom))
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("sluice: " .. boom .. ":1: boom here\nsluice: run with --traceback for the stack\n", err)
    for _, run in ipairs {
      { "--traceback " .. H.q(boom) },
      { H.q(boom), "SLUICE_DEBUG=1" },
    } do
      code, out, err = H.sluice(run[1], run[2])
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.truthy(err:find("^sluice: " .. boom:gsub("%p", "%%%0") .. ":1: boom here\nstack traceback:\n"), err)
      assert.truthy(err:find("boom.lua:2: in main chunk", 1, true), err)
      assert.falsy(err:find("--traceback", 1, true), err)
    end
    -- SLUICE_DEBUG=0 or empty is off
    for _, env in ipairs { "SLUICE_DEBUG=0", "SLUICE_DEBUG=" } do
      code, out, err = H.sluice(H.q(boom), env)
      assert.are.equal(1, code)
      assert.falsy(err:find("stack traceback", 1, true), err)
    end
    -- an error without a position: the script's line it came from
    write(boom, "local x = 1\nerror('no position', 0)\n")
    code, out, err = H.sluice(H.q(boom))
    assert.are.equal(1, code)
    assert.are.equal("sluice: no position\nsluice: at " .. boom .. ":2 (run with --traceback for the stack)\n", err)
  end)

  describe("prints a database error as psql does", function()
    local db
    setup(function()
      db = H.connect()
      H.schema(db, "exe_errors")
      db:exec("create table users(id int primary key, email text)")
      db:exec("insert into users values (1, 'a@example.com')")
    end)
    teardown(function()
      db:exec("drop schema exe_errors cascade")
      db:close()
    end)

    local function script(body)
      local path = tmp .. "/db_error.lua"
      write(path, 'local db = require("sluice").connect()\ndb:exec("set search_path = exe_errors")\n' .. body)
      return path
    end

    it("a syntax error: the statement's line and a ^ under the position, then the script's line", function()
      local path = script('db:exec("select 1")\ndb:exec("select id,\\n  email from users where id = = 1")\n')
      local code, out, err = H.sluice(H.q(path))
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.are.equal('ERROR:  syntax error at or near "="\n'
        .. "LINE 2:   email from users where id = = 1\n"
        .. (" "):rep(38) .. "^\n"
        .. "sluice: at " .. path .. ":4 (run with --traceback for the stack)\n", err)
    end)

    it("a unique violation with its DETAIL; the script's line is where the script called", function()
      local path = script("local function add(id) db:query('insert into users values ($1, $2)', id, 'b@example.com') end\n"
        .. "add(2)\nadd(1)\n")
      local code, out, err = H.sluice(H.q(path))
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.are.equal('ERROR:  duplicate key value violates unique constraint "users_pkey"\n'
        .. "DETAIL:  Key (id)=(1) already exists.\n"
        .. "sluice: at " .. path .. ":3 (run with --traceback for the stack)\n", err)
      db:exec("delete from exe_errors.users where id = 2")
    end)

    it("with --traceback: its SQLSTATE too, and the stack", function()
      local path = script("db:exec('select * from no_such_table')\n")
      local code, _, err = H.sluice("--traceback " .. H.q(path))
      assert.are.equal(1, code)
      assert.truthy(err:find('^ERROR:  42P01: relation "no_such_table" does not exist\n'
        .. "LINE 1: select %* from no_such_table\n +%^\nstack traceback:\n"), err)
      assert.truthy(err:find("db_error.lua:3: in main chunk", 1, true), err)
    end)

    it("an error raised inside the library names the script's line, not the library's", function()
      local path = script("local rows = { { 1, 'dup@example.com' } }\n"
        .. "require('sluice').load { db = db, table = 'users', rows = rows, strategy = 'batch', quiet = true }\n")
      local code, _, err = H.sluice(H.q(path))
      assert.are.equal(1, code)
      assert.truthy(err:find('^ERROR:  [^\n]*duplicate key value violates unique constraint "users_pkey"\n'), err)
      assert.truthy(err:find("\nsluice: at " .. path:gsub("%p", "%%%0") .. ":4 %(run with %-%-traceback for the stack%)\n$"), err)
    end)
  end)

  it("hints at --tmpdb when a connection fails because no database was named", function()
    local unset = "env -u DATABASE_URL -u PGHOST -u PGHOSTADDR -u PGPORT -u PGDATABASE -u PGUSER -u PGSERVICE"
    local code, _, err = H.run(unset .. " " .. H.q(H.exe) .. [[ -e 'require("sluice").connect()']])
    if code == 0 then
      pending("a server answers at libpq's default socket here")
      return
    end
    assert.are.equal(1, code)
    assert.truthy(err:find("^ERROR:  could not connect to PostgreSQL %(host="), err)
    assert.truthy(err:find("\nHINT:  no database was named (no target to sluice.connect(), no DATABASE_URL, "
      .. "no PG* variable such as PGHOST or PGDATABASE): name one, or run the script with sluice --tmpdb "
      .. "for a throwaway PostgreSQL\n", 1, true), err)
    -- a database that was named gets the plain hint
    code, _, err = H.run(unset .. " PGHOST=/nonexistent " .. H.q(H.exe) .. [[ -e 'require("sluice").connect()']])
    assert.are.equal(1, code)
    assert.truthy(err:find("\nHINT:  check the target given to sluice.connect(), DATABASE_URL or the PG* "
      .. "environment variables\n", 1, true), err)
  end)

  it("reports a script that does not compile or cannot be found, with status 1", function()
    write(tmp .. "/bad.lua", "local x = = 1\n")
    local code, _, err = H.sluice(H.q(tmp .. "/bad.lua"))
    assert.are.equal(1, code)
    assert.are.equal("sluice: " .. tmp .. "/bad.lua:1: unexpected symbol near '='\n", err)
    code, _, err = H.sluice("nonexistent_script.lua")
    assert.are.equal(1, code)
    assert.are.equal("sluice: cannot open nonexistent_script.lua: No such file or directory\n", err)
  end)

  it("prints the usage for a bad option and exits 2", function()
    local _, help = H.sluice("--help")
    for argv, why in pairs {
      ["--frobnicate"] = "unknown option --frobnicate",
      ["-x script.lua"] = "unknown option -x",
      ["-e"] = "an argument is missing after -e",
      ["--tmpdb -l"] = "an argument is missing after -l",
      ["--tmpdb=citus:x"] = "the number of Citus workers must be 0 to 16 in --tmpdb=citus:x",
      ["--tmpdb=citus:17"] = "the number of Citus workers must be 0 to 16 in --tmpdb=citus:17",
    } do
      local code, out, err = H.sluice(argv)
      assert.are.equal(2, code, argv)
      assert.are.equal("", out, argv)
      assert.are.equal("sluice: " .. why .. "\n\n" .. help, err, argv)
    end
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
  -- send SIGINT (or sig), and return its exit status as the shell sees
  -- it, its stderr and the seconds it took
  local function interrupt(body, sig)
    local script, ready = tmp .. "/long.lua", tmp .. "/ready"
    os.remove(ready)
    write(script, [[
      local db = require("sluice").connect()
      db:exec("set search_path = sigint")
      local function ready() io.open("]] .. ready .. [[", "w"):close() end
      ]] .. body)
    local cmd = ("timeout -s KILL 30 %s %s 2>%s/err & pid=$!; for i in $(seq 100); do [ -e %s ] && break; sleep 0.05; done; "
      .. "sleep 0.2; kill -%s $pid; wait $pid 2>/dev/null; echo $? > %s/code")
      :format(H.q(H.exe), H.q(script), tmp, ready, sig or "INT", tmp)
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
    assert.are.equal(130, code) -- ended by SIGINT, after the cleanup
    assert.are.equal("ERROR:  canceling statement due to user request\n", err)
    assert.truthy(secs < 10)
    assert.are.equal(0, db:query_one("select count(*) as n from t").n)
  end)

  it("SIGTERM and SIGHUP end a script as Ctrl-C does, with 143 and 129", function()
    for sig, status in pairs { TERM = 143, HUP = 129 } do
      local code, err, secs = interrupt([[
        db:begin()
        db:exec("insert into t values (1)")
        ready()
        db:exec("select pg_sleep(30)")
        db:commit()]], sig)
      assert.are.equal(status, code, sig)
      assert.are.equal("ERROR:  canceling statement due to user request\n", err)
      assert.truthy(secs < 10)
      assert.are.equal(0, db:query_one("select count(*) as n from t").n)
    end
    -- in Lua code (the hook), the message names the signal
    local code, err = interrupt([[
      ready()
      local t0 = os.time()
      while os.time() - t0 < 20 do os.execute("sleep 0.05") end]], "HUP")
    assert.are.equal(129, code)
    assert.truthy(err:find("^sluice: [^\n]*interrupted %(SIGHUP%)\n$"), err)
  end)

  it("a script that catches the interrupt and ends normally exits 0", function()
    local code, err = interrupt([[
      ready()
      local ok, e = pcall(db.exec, db, "select pg_sleep(30)")
      io.stderr:write("caught: ", e.message, "\n")]])
    assert.are.equal(0, code)
    assert.are.equal("caught: canceling statement due to user request\n", err)
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
    assert.are.equal(130, code)
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
