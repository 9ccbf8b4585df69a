rockspec_format = "3.0"
package = "sluice"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout with `luarocks make`
}
description = {
  summary = "Fast, scriptable data loading into PostgreSQL from LuaJIT",
  detailed = [[
    The sluice core (libpq connections, transactions, a throwaway server)
    as a Lua module for plain LuaJIT: require "sluice".
  ]],
  license = "MIT",
}
dependencies = {
  "lua == 5.1", -- LuaJIT (the library uses the FFI)
}
-- libpq and zlib come from Debian (make deps); the Makefile finds
-- them with pkg-config.  sluice.args (command lines for scripts) needs
-- argparse: Debian's lua-argparse, or the argparse rock.
build = {
  type = "make",
  build_target = "module",
  install_target = "install-module",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
  },
  install_variables = {
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
}
