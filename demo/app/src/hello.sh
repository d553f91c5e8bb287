#!/bin/sh
echo "hello from the bilge demo image (TZ=${TZ:-UTC}, $(date))"
