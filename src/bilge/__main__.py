from bilge.entry import run

run()
