"""The live resilience scorecard (CONTRACT §13, docs/resilience.md).

    measures   the figures as pure functions of rows: quantiles, shares within a target, uptime from offline
               intervals, events and their functionality curves (PEOPLES), scores and ratings
    card       Scorecard: a community's records from the state database, its indicators, categories, overall
    words      names and reasons in zh-CN and English
    history    the scorecards written to the reading store as measurement `resilience`, at start and daily
"""
