-- make install and the rockspec give a sluice that works outside the tree.
local H = require "helper"

describe("installing", function()
  local tmp
  setup(function() tmp = H.tmpdir() end)
  teardown(function() os.execute("rm -rf " .. H.q(tmp)) end)

  it("make install DESTDIR= PREFIX= installs a binary that finds its library", function()
    local code, _, err = H.run(("make -C %s install DESTDIR=%s PREFIX=/opt/sl")
      :format(H.q(H.root), H.q(tmp .. "/dest")))
    assert.are.equal(0, code, err)
    local bin = tmp .. "/dest/opt/sl/bin/sluice"
    local code2, out, err2 = H.run(("cd / && env -u SLUICE_LUADIR %s -e %s"):format(H.q(bin),
      H.q([[local s = require "sluice"; print(package.searchpath("sluice", package.path)); print(s.connect():query_one("select 40 + 2 as x").x)]])))
    assert.are.equal(0, code2, err2)
    assert.are.equal(tmp .. "/dest/opt/sl/bin/../share/lua/5.1/sluice/init.lua\n42\n", out)
  end)

  it("luarocks make builds the core as a module for plain LuaJIT", function()
    local code, _, err = H.run(("cd %s && luarocks make --tree %s sluice-*.rockspec")
      :format(H.q(H.root), H.q(tmp .. "/rocks")))
    assert.are.equal(0, code, err)
    local r = tmp .. "/rocks"
    local code2, out, err2 = H.run(("cd / && LUA_PATH=%s LUA_CPATH=%s luajit -e %s"):format(
      H.q(r .. "/share/lua/5.1/?.lua;" .. r .. "/share/lua/5.1/?/init.lua;;"),
      H.q(r .. "/lib/lua/5.1/?.so;;"),
      H.q([[local s = require "sluice"; local db = s.connect()
            print(db:query_one("select 2 * 21 as x").x)
            -- the compiled binary row writer works from the module too
            db:exec("create temp table m (a int, b text, c float8)")
            local cp = db:copy("m", nil, { format = "binary" })
            print(debug.getinfo(cp.row, "S").what)
            for i = 1, 1000 do cp:row(i, "r" .. i, i / 4) end
            print(cp:finish(), db:query_one("select sum(c) as s from m").s)]])))
    assert.are.equal(0, code2, err2)
    assert.are.equal("42\nLua\n1000\t125125\n", out)
  end)
end)
