package client

// ListPages lists with a given page size, so that tests can page through
// a listing without storing thousands of clips.
var ListPages = (*Client).list
